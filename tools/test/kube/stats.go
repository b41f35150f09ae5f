package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Usage is a container's resource use as the kubelet measures it.
type Usage struct {
	Pod             string
	CPUMilli        float64 // cores × 1000, averaged over the kubelet's last sampling window
	WorkingSetBytes uint64  // the memory the kernel counts against the limit
}

// ContainerUsage reads the kubelet's summary API (through the API server, so no
// metrics-server is needed) and returns the use of the named container in every
// pod of namespace ns on node.
func (k Kubectl) ContainerUsage(ctx context.Context, node, ns, container string) ([]Usage, error) {
	out, err := k.Output(ctx, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/stats/summary")
	if err != nil {
		return nil, fmt.Errorf("read kubelet stats of node %s: %w", node, err)
	}
	var s struct {
		Pods []struct {
			PodRef struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"podRef"`
			Containers []struct {
				Name string `json:"name"`
				CPU  struct {
					UsageNanoCores *uint64 `json:"usageNanoCores"`
				} `json:"cpu"`
				Memory struct {
					WorkingSetBytes *uint64 `json:"workingSetBytes"`
				} `json:"memory"`
			} `json:"containers"`
		} `json:"pods"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return nil, fmt.Errorf("decode kubelet stats of node %s: %w", node, err)
	}
	var us []Usage
	for _, p := range s.Pods {
		if p.PodRef.Namespace != ns {
			continue
		}
		for _, c := range p.Containers {
			if c.Name != container {
				continue
			}
			u := Usage{Pod: p.PodRef.Name}
			if c.CPU.UsageNanoCores != nil {
				u.CPUMilli = float64(*c.CPU.UsageNanoCores) / 1e6
			}
			if c.Memory.WorkingSetBytes != nil {
				u.WorkingSetBytes = *c.Memory.WorkingSetBytes
			}
			us = append(us, u)
		}
	}
	return us, nil
}

// Peak is the highest use seen in any one container over a sampling period.
type Peak struct {
	CPUMilli float64
	MemMiB   float64
	Samples  int
	Err      error // the last error, if sampling failed
}

func (p Peak) String() string {
	if p.Samples == 0 {
		return fmt.Sprintf("no sample (%v)", p.Err)
	}
	return fmt.Sprintf("CPU %.0fm, memory working set %.1f MiB (%d samples)", p.CPUMilli, p.MemMiB, p.Samples)
}

// WatchUsage samples ContainerUsage every second until the returned function is
// called; that function returns the peaks.
func (k Kubectl) WatchUsage(ctx context.Context, node, ns, container string) func() Peak {
	ctx, cancel := context.WithCancel(ctx)
	var p Peak
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			us, err := k.ContainerUsage(ctx, node, ns, container)
			if err != nil && ctx.Err() == nil {
				p.Err = err
			}
			for _, u := range us {
				p.Samples++
				p.CPUMilli = max(p.CPUMilli, u.CPUMilli)
				p.MemMiB = max(p.MemMiB, float64(u.WorkingSetBytes)/(1<<20))
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() Peak {
		cancel()
		<-done // p is written only by the goroutine, which has ended
		return p
	}
}
