//go:build e2e

package manifests

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

// decoy stands in for the dev loop's pod (k8s/dev/): same image, same
// app.kubernetes.io/name, but `app: scalable-app-dev`. The test environment's
// Service must not send it traffic.
const decoy = `apiVersion: v1
kind: Pod
metadata:
  name: scalable-app-dev-decoy
  namespace: test
  labels:
    app: scalable-app-dev
    app.kubernetes.io/name: scalable-app
spec:
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: scalable-app
      image: scalable-app:latest
      imagePullPolicy: IfNotPresent
      ports: [{name: http, containerPort: 5000}]
      readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 1}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
`

type environment struct {
	name, host string
	replicas   int
}

// Both environments side by side, each on its own host, each Service holding
// only its own environment's pods.
func (s *suite) testStep5Overlays(t *testing.T) {
	ctx := stepContext(t, 8*time.Minute)
	envs := []environment{{"test", testHost, 2}, {"prod", seedHost, 3}}
	k := s.target.Kubectl

	// prod serves scalable.local, the host of the seed's Ingress: as the README
	// says, the quick start's Ingress goes first.
	if _, err := s.kc.Output(ctx, "delete", "-f", "k8s/ingress.yaml", "--ignore-not-found"); err != nil {
		t.Fatalf("remove the quick start's Ingress before prod takes scalable.local: %v", err)
	}
	for _, e := range envs {
		if _, err := k.Output(ctx, "apply", "-k", "k8s/overlays/"+e.name); err != nil {
			t.Fatalf("`kubectl apply -k k8s/overlays/%s` failed: %v", e.name, err)
		}
	}
	if _, err := k.OutputStdin(ctx, strings.NewReader(decoy), "apply", "-f", "-"); err != nil {
		t.Fatalf("start the decoy dev pod in namespace test: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		k.Output(ctx, "delete", "pod", "-n", "test", "scalable-app-dev-decoy", "--ignore-not-found")
	})
	if _, err := k.WaitReadyPods(ctx, "test", "app=scalable-app-dev", 1, 2*time.Minute); err != nil {
		t.Fatalf("the decoy dev pod did not become Ready: %v", err)
	}
	decoys, err := k.Pods(ctx, "test", "app=scalable-app-dev")
	if err != nil {
		t.Fatal(err)
	}

	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			pods, err := k.WaitReadyPods(ctx, e.name, selector, e.replicas, 3*time.Minute)
			if err != nil {
				t.Fatalf("environment %s did not reach %d Ready pods: %v", e.name, e.replicas, err)
			}
			var svc struct {
				Spec struct{ Type string } `json:"spec"`
			}
			if err := k.JSON(ctx, &svc, "get", "service", "scalable-app", "-n", e.name); err != nil {
				t.Fatal(err)
			}
			if svc.Spec.Type != "LoadBalancer" {
				t.Fatalf("environment %s: Service type is %q, want LoadBalancer", e.name, svc.Spec.Type)
			}

			want := ips(pods)
			var eps []kube.Endpoint
			err = kube.Poll(ctx, time.Minute, 250*time.Millisecond, fmt.Sprintf("wait for the endpoints of Service %s/scalable-app to be its %d pods", e.name, e.replicas),
				func(ctx context.Context) (bool, string, error) {
					eps, err = k.Endpoints(ctx, e.name, "scalable-app")
					if err != nil {
						return false, err.Error(), nil
					}
					var got []string
					for _, ep := range eps {
						if ep.Ready {
							got = append(got, ep.IP)
						}
					}
					sort.Strings(got)
					return slices.Equal(got, want), fmt.Sprintf("ready endpoints %v, pods %v", got, want), nil
				})
			if err != nil {
				t.Fatal(err)
			}
			for _, ep := range eps {
				if ep.PodNamespace != e.name || !slices.Contains(kube.Names(pods), ep.PodName) {
					t.Fatalf("Service %s/scalable-app has endpoint %s of pod %s/%s, not one of the environment's pods %v", e.name, ep.IP, ep.PodNamespace, ep.PodName, kube.Names(pods))
				}
				for _, d := range decoys {
					if ep.IP == d.IP {
						t.Fatalf("Service %s/scalable-app selects the dev pod %s (%s)", e.name, d.Name, d.IP)
					}
				}
			}
			t.Logf("Service %s/scalable-app (LoadBalancer) endpoints: %v = its pods %v; decoy dev pod %s left out", e.name, want, kube.Names(pods), decoys[0].IP)

			target := load.Target{URL: "http://" + s.target.IngressAddr + "/", Host: e.host}
			s.waitIngress(t, ctx, target, pods)
			client, err := load.NewClient(target, load.KeepAlive)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			seen := map[string]int{}
			for i := range 60 {
				rep, err := client.Do(ctx)
				if err != nil || rep.Status != http.StatusOK || rep.Body != load.Greeting {
					t.Fatalf("request %d with Host: %s: want 200 %q, got %+v, error %v", i+1, e.host, load.Greeting, rep, err)
				}
				if !slices.Contains(kube.Names(pods), rep.Instance) {
					t.Fatalf("Host: %s was answered by %q, which is not a pod of environment %s %v", e.host, rep.Instance, e.name, kube.Names(pods))
				}
				seen[rep.Instance]++
			}
			if len(seen) != e.replicas {
				t.Fatalf("over 60 requests with Host: %s only pods %v answered; want all %d of %v", e.host, seen, e.replicas, kube.Names(pods))
			}
			t.Logf("environment %s answers on http://%s/ through the Ingress, by pod: %v", e.name, e.host, seen)
		})
	}
}

func ips(pods []kube.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.IP)
	}
	sort.Strings(out)
	return out
}
