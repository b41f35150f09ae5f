//go:build e2e

package manifests

import (
	"context"
	"slices"
	"testing"
	"time"

	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

// keepAliveRate is the load of the keep-alive clients beside the main load:
// persistent connections held across the rollout, never retried, so a
// connection the Ingress breaks mid-request shows as a failure.
const (
	keepAliveClients = 4
	keepAliveRate    = 40
)

// A rolling restart under load through the Ingress loses no request.
func (s *suite) testStep3RolloutRestartUnderLoad(t *testing.T) {
	ctx := stepContext(t, 6*time.Minute)
	old := s.applyBase(t, ctx, "k8s/deployment.yaml", "k8s/service.yaml", "k8s/ingress.yaml")
	target := load.Target{URL: "http://" + s.target.IngressAddr + "/", Host: seedHost}
	s.waitIngress(t, ctx, target, old)

	usage := s.target.Kubectl.WatchUsage(ctx, old[0].Node, baseNS, "scalable-app")
	run := startLoad(t, ctx, target)
	start := time.Now()
	if _, err := s.kc.Output(ctx, "rollout", "restart", "deployment/scalable-app"); err != nil {
		run.stop()
		t.Fatalf("`kubectl rollout restart deployment/scalable-app` failed: %v", err)
	}
	if _, err := s.kc.Output(ctx, "rollout", "status", "deployment/scalable-app", "--timeout=3m"); err != nil {
		run.stop()
		t.Fatalf("the rollout did not complete: %v", err)
	}
	rollout := time.Since(start)
	// Keep the load on until the old pods have finished their whole stop
	// sequence (preStop, drain, shutdown): that is where requests get lost.
	err := s.kc.WaitGone(ctx, baseNS, kube.Names(old), 2*time.Minute)
	res, kept := run.stop()
	peak := usage()
	if err != nil {
		t.Fatalf("the old pods did not go away after the rollout: %v", err)
	}
	t.Logf("rollout restart completed in %s; old pods gone after %s", rollout.Round(100*time.Millisecond), res.Elapsed.Round(100*time.Millisecond))
	t.Logf("load through the Ingress: %s", res)
	t.Logf("keep-alive load through the Ingress: %s", kept)
	t.Logf("peak per pod during the load (kubelet stats): %s", peak)
	s.assertNoLoss(t, res, "during `kubectl rollout restart`")
	s.assertNoLoss(t, kept, "during `kubectl rollout restart`")
	if res.Rate() < 100 {
		t.Fatalf("the load reached only %.0f req/s; at least 100 are needed for the check to mean something", res.Rate())
	}

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

// underLoad is the load of steps 3 and 4: the main load at reqPerSec from
// fresh-connection clients, and beside it keep-alive clients.
type underLoad struct{ main, keepAlive *load.Load }

func startLoad(t *testing.T, ctx context.Context, target load.Target) underLoad {
	t.Helper()
	main, err := load.Start(ctx, load.Options{Target: target, Fresh: loadWorker, Rate: reqPerSec, WantBody: load.Greeting})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := load.Start(ctx, load.Options{Target: target, KeepAlive: keepAliveClients, Rate: keepAliveRate, WantBody: load.Greeting})
	if err != nil {
		main.Stop()
		t.Fatal(err)
	}
	return underLoad{main: main, keepAlive: kept}
}

// stop ends both loads and returns their reports: main, then keep-alive.
func (u underLoad) stop() (load.Report, load.Report) {
	return u.main.Stop(), u.keepAlive.Stop()
}

// assertNoLoss fails the test unless every request of the load succeeded.
// On a failure it first prints kube-proxy's log around the failures, when
// this machine has it: its rule syncs, to set a refused connect against.
func (st *suite) assertNoLoss(t *testing.T, res load.Report, during string) {
	t.Helper()
	if res.Sent == 0 {
		t.Fatalf("%s sent no request %s", res.Clients(), during)
	}
	if f := res.Failed(); f > 0 {
		for _, line := range st.target.ProxyLogAround(res.Samples, time.Second) {
			t.Logf("kube-proxy: %s", line)
		}
		t.Fatalf("%d of %d requests of %s failed %s (%d without an answer %v, statuses %v, %d wrong bodies); first: %v",
			f, res.Sent, res.Clients(), during, res.NoAnswer(), res.Errors, res.Status, res.BadBody, res.Samples)
	}
}
