//go:build e2e

package manifests

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

// Seed 4.3: the Deployment and the Service, applied verbatim.
func (s *suite) testStep1DeploymentAndService(t *testing.T) {
	ctx := stepContext(t, 5*time.Minute)
	for _, f := range []string{"k8s/deployment.yaml", "k8s/service.yaml"} {
		if _, err := s.kc.Output(ctx, "apply", "-f", f); err != nil {
			t.Fatalf("seed 4.3: `kubectl apply -f %s` failed: %v", f, err)
		}
	}
	start := time.Now()
	pods, err := s.kc.WaitReadyPods(ctx, baseNS, selector, 2, 3*time.Minute)
	if err != nil {
		t.Fatalf("seed 4.3: the Deployment did not reach 2 Running and Ready pods: %v", err)
	}
	t.Logf("2 pods Running and Ready %s after apply: %v", time.Since(start).Round(100*time.Millisecond), kube.Names(pods))
	for _, what := range []string{"pods", "svc"} {
		out, err := s.kc.Output(ctx, "get", what)
		if err != nil {
			t.Fatalf("seed 4.3: `kubectl get %s` failed: %v", what, err)
		}
		t.Logf("kubectl get %s:\n%s", what, out)
	}

	port, err := s.kc.NodePort(ctx, baseNS, "scalable-app", "http")
	if err != nil {
		t.Fatalf("the Service is not a NodePort Service with a port named http: %v", err)
	}
	target := load.Target{URL: "http://" + net.JoinHostPort(s.target.NodeAddr, strconv.Itoa(port)) + "/"}
	// A new connection per request, so kube-proxy picks a pod for each.
	client, err := load.NewClient(target, load.Fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// Ready pods reach kube-proxy's rules a moment later: wait until each pod
	// has answered once, then count.
	answered := map[string]bool{}
	if err := kube.Poll(ctx, time.Minute, 100*time.Millisecond, "wait for both pods to answer through the Service at "+target.URL,
		func(ctx context.Context) (bool, string, error) {
			rep, err := client.Do(ctx)
			if err != nil {
				return false, err.Error(), nil
			}
			if rep.Status == 200 && rep.Body == load.Greeting {
				answered[rep.Instance] = true
			}
			return len(answered) == 2, fmt.Sprintf("last: status %d from %q body %.60q; pods answered so far: %v", rep.Status, rep.Instance, rep.Body, answered), nil
		}); err != nil {
		t.Fatal(err)
	}

	seen := map[string]int{}
	for i := range 50 {
		rep, err := client.Do(ctx)
		if err != nil {
			t.Fatalf("request %d to the Service at %s failed: %v", i+1, target.URL, err)
		}
		if rep.Status != 200 || rep.Body != load.Greeting {
			t.Fatalf("request %d to the Service: want 200 %q, got %d %q", i+1, load.Greeting, rep.Status, rep.Body)
		}
		if !slices.Contains(kube.Names(pods), rep.Instance) {
			t.Fatalf("request %d was answered by %q (%s header), which is not one of the Deployment's pods %v", i+1, rep.Instance, load.InstanceHeader, kube.Names(pods))
		}
		seen[rep.Instance]++
	}
	t.Logf("50 requests through the Service at %s, by pod: %v", target.URL, seen)
	if len(seen) != 2 {
		t.Fatalf("over 50 requests the %s header named %d pod(s) %v; want both replicas %v", load.InstanceHeader, len(seen), seen, kube.Names(pods))
	}
}
