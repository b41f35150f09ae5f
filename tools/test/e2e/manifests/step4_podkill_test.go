//go:build e2e

package manifests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

// Deleting a pod under load through the Ingress loses no request. The pod
// deleted must have been serving that load: deleting an idle pod proves
// nothing.
func (s *suite) testStep4PodDeleteUnderLoad(t *testing.T) {
	ctx := stepContext(t, 5*time.Minute)
	pods := s.applyBase(t, ctx, "k8s/deployment.yaml", "k8s/service.yaml", "k8s/ingress.yaml")
	target := load.Target{URL: "http://" + s.target.IngressAddr + "/", Host: seedHost}
	s.waitIngress(t, ctx, target, pods)

	victim := pods[0].Name
	run := startLoad(t, ctx, target)
	const servedBefore = 20
	if err := kube.Poll(ctx, 30*time.Second, 100*time.Millisecond, fmt.Sprintf("wait for pod %s to serve %d requests of the load", victim, servedBefore),
		func(context.Context) (bool, string, error) {
			main, kept := run.main.Snapshot(), run.keepAlive.Snapshot()
			n := main.ByInstance[victim] + kept.ByInstance[victim]
			return n >= servedBefore, fmt.Sprintf("%s answered %d; by pod: %v and %v", victim, n, main.ByInstance, kept.ByInstance), nil
		}); err != nil {
		run.stop()
		t.Fatalf("the pod to be deleted is not serving the load, so deleting it would prove nothing: %v", err)
	}
	start := time.Now()
	// kubectl delete waits until the pod is gone: its whole stop sequence runs under load.
	if _, err := s.kc.Output(ctx, "delete", "pod", victim); err != nil {
		run.stop()
		t.Fatalf("`kubectl delete pod %s` failed: %v", victim, err)
	}
	gone := time.Since(start)
	_, err := s.kc.WaitReadyPods(ctx, baseNS, selector, 2, 2*time.Minute)
	res, kept := run.stop()
	if err != nil {
		t.Fatalf("the Deployment did not replace the deleted pod %s: %v", victim, err)
	}
	t.Logf("pod %s gone %s after `kubectl delete` (its whole stop sequence); replacement Ready; load ran %s", victim, gone.Round(100*time.Millisecond), res.Elapsed.Round(100*time.Millisecond))
	t.Logf("load through the Ingress: %s", res)
	t.Logf("keep-alive load through the Ingress: %s", kept)
	during := fmt.Sprintf("while pod %s was deleted", victim)
	s.assertNoLoss(t, res, during)
	s.assertNoLoss(t, kept, during)
	if res.Rate() < 100 {
		t.Fatalf("the load reached only %.0f req/s %s; at least 100 are needed for the check to mean something", res.Rate(), during)
	}
	if res.ByInstance[victim]+kept.ByInstance[victim] < servedBefore {
		t.Fatalf("the deleted pod %s served %d requests, fewer than the %d seen before the delete", victim, res.ByInstance[victim]+kept.ByInstance[victim], servedBefore)
	}
}
