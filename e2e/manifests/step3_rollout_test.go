//go:build e2e

package manifests

import (
	"slices"
	"testing"
	"time"

	"scalable-app/e2e/internal/kube"
	"scalable-app/e2e/internal/load"
)

// A rolling restart under load through the Ingress loses no request.
func TestStep3RolloutRestartUnderLoad(t *testing.T) {
	s := suiteFor(t)
	ctx := stepContext(t, 6*time.Minute)
	old := s.applyBase(t, ctx, "k8s/deployment.yaml", "k8s/service.yaml", "k8s/ingress.yaml")
	target := load.Target{URL: "http://" + s.target.IngressAddr + "/", Host: seedHost}
	s.waitIngress(t, ctx, target, old)

	usage := s.target.Kubectl.WatchUsage(ctx, old[0].Node, baseNS, "scalable-app")
	run := load.Start(ctx, target, reqPerSec, loadWorker)
	start := time.Now()
	if _, err := s.kc.Run(ctx, "rollout", "restart", "deployment/scalable-app"); err != nil {
		run.Stop()
		t.Fatalf("`kubectl rollout restart deployment/scalable-app` failed: %v", err)
	}
	if _, err := s.kc.Run(ctx, "rollout", "status", "deployment/scalable-app", "--timeout=3m"); err != nil {
		run.Stop()
		t.Fatalf("the rollout did not complete: %v", err)
	}
	rollout := time.Since(start)
	// Keep the load on until the old pods have finished their whole stop
	// sequence (preStop, drain, shutdown): that is where requests get lost.
	err := s.kc.WaitGone(ctx, baseNS, kube.Names(old), 2*time.Minute)
	res := run.Stop()
	peak := usage()
	if err != nil {
		t.Fatalf("the old pods did not go away after the rollout: %v", err)
	}
	t.Logf("rollout restart completed in %s; old pods gone after %s", rollout.Round(100*time.Millisecond), res.Elapsed.Round(100*time.Millisecond))
	t.Logf("load through the Ingress: %s", res)
	t.Logf("peak per pod during the load (kubelet stats): %s", peak)
	assertNoLoss(t, res, "during `kubectl rollout restart`")

	newPods, err := s.kc.Pods(ctx, baseNS, selector)
	if err != nil {
		t.Fatal(err)
	}
	servedByNew := 0
	for name, n := range res.ByInstance {
		if !slices.Contains(kube.Names(old), name) {
			servedByNew += n
		}
	}
	if servedByNew == 0 {
		t.Fatalf("no request was served by a new pod %v: the load did not cover the rollout", kube.Names(newPods))
	}
}

// assertNoLoss fails the test unless every request succeeded at the rate asked.
func assertNoLoss(t *testing.T, res load.Result, during string) {
	t.Helper()
	if res.Sent == 0 {
		t.Fatalf("no request was sent %s", during)
	}
	if f := res.Failed(); f > 0 {
		t.Fatalf("%d of %d requests failed %s (%d connection errors, non-200 %v, %d wrong bodies); first: %v",
			f, res.Sent, during, res.Errors, res.Status, res.BadBody, res.Samples)
	}
	if res.Rate() < 100 {
		t.Fatalf("the load reached only %.0f req/s %s; at least 100 are needed for the check to mean something", res.Rate(), during)
	}
}
