//go:build e2e

package manifests

import (
	"fmt"
	"testing"
	"time"

	"scalable-app/e2e/internal/load"
)

// Deleting a pod under load through the Ingress loses no request.
func TestStep4PodDeleteUnderLoad(t *testing.T) {
	s := suiteFor(t)
	ctx := stepContext(t, 5*time.Minute)
	pods := s.applyBase(t, ctx, "k8s/deployment.yaml", "k8s/service.yaml", "k8s/ingress.yaml")
	target := load.Target{URL: "http://" + s.target.IngressAddr + "/", Host: seedHost}
	s.waitIngress(t, ctx, target, pods)

	victim := pods[0].Name
	run := load.Start(ctx, target, reqPerSec, loadWorker)
	start := time.Now()
	// kubectl delete waits until the pod is gone: its whole stop sequence runs under load.
	if _, err := s.kc.Run(ctx, "delete", "pod", victim); err != nil {
		run.Stop()
		t.Fatalf("`kubectl delete pod %s` failed: %v", victim, err)
	}
	gone := time.Since(start)
	_, err := s.kc.WaitReadyPods(ctx, baseNS, selector, 2, 2*time.Minute)
	res := run.Stop()
	if err != nil {
		t.Fatalf("the Deployment did not replace the deleted pod %s: %v", victim, err)
	}
	t.Logf("pod %s gone %s after `kubectl delete` (its whole stop sequence); replacement Ready; load ran %s", victim, gone.Round(100*time.Millisecond), res.Elapsed.Round(100*time.Millisecond))
	t.Logf("load through the Ingress: %s", res)
	assertNoLoss(t, res, fmt.Sprintf("while pod %s was deleted", victim))
	if res.ByInstance[victim] == 0 {
		t.Logf("note: the deleted pod served none of the requests")
	}
}
