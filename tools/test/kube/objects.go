package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Pod is what the suites need to know of a pod.
type Pod struct {
	Name, Namespace, IP, Node, Phase string
	UID                              string // tells a recreated pod of the same name apart
	Ready                            bool
	Restarts                         int      // container restarts, summed over its containers
	Terminating                      bool     // deletion requested
	ReplicaSet                       string   // owning ReplicaSet, if any
	ImageIDs                         []string // what each container runs: the digest containerd pulled or loaded
	Labels                           map[string]string
}

type podList struct {
	Items []struct {
		Metadata struct {
			Name              string            `json:"name"`
			UID               string            `json:"uid"`
			Namespace         string            `json:"namespace"`
			Labels            map[string]string `json:"labels"`
			DeletionTimestamp *time.Time        `json:"deletionTimestamp"`
			OwnerReferences   []struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"ownerReferences"`
		} `json:"metadata"`
		Spec struct {
			NodeName string `json:"nodeName"`
		} `json:"spec"`
		Status struct {
			Phase      string `json:"phase"`
			PodIP      string `json:"podIP"`
			Conditions []struct {
				Type   string `json:"type"`
				Status string `json:"status"`
			} `json:"conditions"`
			ContainerStatuses []struct {
				RestartCount int    `json:"restartCount"`
				ImageID      string `json:"imageID"`
			} `json:"containerStatuses"`
		} `json:"status"`
	} `json:"items"`
}

// Pods lists the pods of namespace ns matching the label selector.
func (k Kubectl) Pods(ctx context.Context, ns, selector string) ([]Pod, error) {
	args := []string{"get", "pods", "-n", ns}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	var l podList
	if err := k.JSON(ctx, &l, args...); err != nil {
		return nil, err
	}
	pods := make([]Pod, 0, len(l.Items))
	for _, it := range l.Items {
		p := Pod{
			Name: it.Metadata.Name, Namespace: it.Metadata.Namespace, Labels: it.Metadata.Labels,
			IP: it.Status.PodIP, Node: it.Spec.NodeName, Phase: it.Status.Phase,
			Terminating: it.Metadata.DeletionTimestamp != nil, UID: it.Metadata.UID,
		}
		for _, c := range it.Status.ContainerStatuses {
			p.Restarts += c.RestartCount
			p.ImageIDs = append(p.ImageIDs, c.ImageID)
		}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				p.Ready = true
			}
		}
		for _, o := range it.Metadata.OwnerReferences {
			if o.Kind == "ReplicaSet" {
				p.ReplicaSet = o.Name
			}
		}
		pods = append(pods, p)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods, nil
}

// Names returns the pods' names.
func Names(pods []Pod) []string {
	n := make([]string, len(pods))
	for i, p := range pods {
		n[i] = p.Name
	}
	return n
}

// Describe summarises pods for a progress or failure message.
func Describe(pods []Pod) string {
	if len(pods) == 0 {
		return "no pods"
	}
	parts := make([]string, len(pods))
	for i, p := range pods {
		state := p.Phase
		if p.Ready {
			state += ",Ready"
		}
		if p.Terminating {
			state += ",Terminating"
		}
		parts[i] = p.Name + "(" + state + ")"
	}
	return strings.Join(parts, " ")
}

// WaitReadyPods waits until exactly want pods match selector in ns, all Running,
// Ready and not terminating, and returns them.
func (k Kubectl) WaitReadyPods(ctx context.Context, ns, selector string, want int, timeout time.Duration) ([]Pod, error) {
	var ready []Pod
	err := Poll(ctx, timeout, 250*time.Millisecond, fmt.Sprintf("wait for %d Ready pods %s in namespace %s", want, selector, ns),
		func(ctx context.Context) (bool, string, error) {
			pods, err := k.Pods(ctx, ns, selector)
			if err != nil {
				return false, err.Error(), nil // the API server may blink; keep polling
			}
			ready = ready[:0]
			for _, p := range pods {
				if p.Phase == "Running" && p.Ready && !p.Terminating {
					ready = append(ready, p)
				}
			}
			return len(ready) == want && len(pods) == want, Describe(pods), nil
		})
	return ready, err
}

// WaitGone waits until none of the named pods exists any more in ns.
func (k Kubectl) WaitGone(ctx context.Context, ns string, names []string, timeout time.Duration) error {
	return Poll(ctx, timeout, 250*time.Millisecond, fmt.Sprintf("wait for pods %s to be gone from namespace %s", strings.Join(names, ","), ns),
		func(ctx context.Context) (bool, string, error) {
			pods, err := k.Pods(ctx, ns, "")
			if err != nil {
				return false, err.Error(), nil
			}
			var left []Pod
			for _, p := range pods {
				for _, n := range names {
					if p.Name == n {
						left = append(left, p)
					}
				}
			}
			return len(left) == 0, "still there: " + Describe(left), nil
		})
}

// Endpoint is one address of a Service's EndpointSlices.
type Endpoint struct {
	IP, PodName, PodNamespace string
	Ready                     bool
}

type sliceList struct {
	Items []struct {
		Endpoints []struct {
			Addresses  []string `json:"addresses"`
			Conditions struct {
				Ready *bool `json:"ready"`
			} `json:"conditions"`
			TargetRef *struct {
				Kind      string `json:"kind"`
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"targetRef"`
		} `json:"endpoints"`
	} `json:"items"`
}

// Endpoints lists the endpoints of Service svc in ns, from its EndpointSlices.
func (k Kubectl) Endpoints(ctx context.Context, ns, svc string) ([]Endpoint, error) {
	var l sliceList
	if err := k.JSON(ctx, &l, "get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name="+svc); err != nil {
		return nil, err
	}
	var eps []Endpoint
	for _, s := range l.Items {
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				ep := Endpoint{IP: a, Ready: e.Conditions.Ready == nil || *e.Conditions.Ready}
				if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
					ep.PodName, ep.PodNamespace = e.TargetRef.Name, e.TargetRef.Namespace
				}
				eps = append(eps, ep)
			}
		}
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].PodName < eps[j].PodName })
	return eps, nil
}

// NodePort returns the node port of Service svc's port named portName.
func (k Kubectl) NodePort(ctx context.Context, ns, svc, portName string) (int, error) {
	var s struct {
		Spec struct {
			Ports []struct {
				Name     string `json:"name"`
				NodePort int    `json:"nodePort"`
			} `json:"ports"`
		} `json:"spec"`
	}
	if err := k.JSON(ctx, &s, "get", "service", svc, "-n", ns); err != nil {
		return 0, err
	}
	for _, p := range s.Spec.Ports {
		if p.Name == portName && p.NodePort != 0 {
			return p.NodePort, nil
		}
	}
	return 0, fmt.Errorf("service %s/%s has no node port named %q", ns, svc, portName)
}

// NamespaceExists reports whether namespace ns exists.
func (k Kubectl) NamespaceExists(ctx context.Context, ns string) (bool, error) {
	out, err := k.Output(ctx, "get", "namespace", ns, "--ignore-not-found", "-o", "name")
	return strings.TrimSpace(out) != "", err
}
