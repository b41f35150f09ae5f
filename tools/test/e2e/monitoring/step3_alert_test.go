//go:build e2e

package monitoring

import (
	"context"
	"fmt"
	"testing"
	"time"

	"scalable-app/tools/test/kube"
)

const (
	replicasDown = "ScalableAppAllReplicasDown"
	// Its `for` in k8s/monitoring/rules: it must be pending well within it.
	replicasDownFor = time.Minute
)

// Scaled to 0, the Deployment leaves no target: ScalableAppAllReplicasDown
// (not up == 0, which has no series left to fire on) goes pending within its
// `for`, and resolves once the replicas are back.
func (st *suite) testStep3ReplicasDownAlert(t *testing.T) {
	ctx := stepContext(t, 6*time.Minute)
	k := st.target.Kubectl
	if got, err := st.alertState(ctx); err != nil || got != "" {
		t.Fatalf("%s is %q before the scale-down (%v): the test could not tell it fire", replicasDown, got, err)
	}
	if _, err := k.Output(ctx, "scale", "deployment/scalable-app", "-n", namespace, "--replicas=0"); err != nil {
		t.Fatal(err)
	}
	// The pods drain for some 15 s (preStop, DRAIN_DELAY) and answer scrapes
	// meanwhile: the clock starts once the last one is gone.
	if err := kube.Poll(ctx, 2*time.Minute, time.Second, "the app pods to go", func(ctx context.Context) (bool, string, error) {
		pods, err := k.Pods(ctx, namespace, appSelector)
		return err == nil && len(pods) == 0, fmt.Sprintf("%d pods", len(pods)), err
	}); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	if err := st.waitAlert(ctx, "pending or firing", replicasDownFor, func(s string) bool { return s != "" }); err != nil {
		t.Fatalf("after the last pod went: %v", err)
	}
	t.Logf("%s pending %s after the last pod went (its `for` is %s)", replicasDown, time.Since(gone).Round(time.Second), replicasDownFor)

	if _, err := k.Output(ctx, "scale", "deployment/scalable-app", "-n", namespace, "--replicas=2"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.WaitReadyPods(ctx, namespace, appSelector, 2, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// A scrape (15 s) and an evaluation (15 s) after the pods answer.
	if err := st.waitAlert(ctx, "resolved", 2*time.Minute, func(s string) bool { return s == "" }); err != nil {
		t.Fatalf("after the replicas were Ready again: %v", err)
	}
	t.Logf("%s resolved %s after both replicas were Ready", replicasDown, time.Since(back).Round(time.Second))
}

// alertState is the alert's state for the suite's namespace: "pending",
// "firing", or "" when Prometheus holds none.
func (st *suite) alertState(ctx context.Context) (string, error) {
	alerts, err := st.prom.alerts(ctx)
	if err != nil {
		return "", err
	}
	for _, a := range alerts {
		if a.Labels["alertname"] == replicasDown && a.Labels["namespace"] == namespace {
			return a.State, nil
		}
	}
	return "", nil
}

func (st *suite) waitAlert(ctx context.Context, what string, within time.Duration, done func(string) bool) error {
	return kube.Poll(ctx, within, 2*time.Second, replicasDown+" to be "+what, func(ctx context.Context) (bool, string, error) {
		s, err := st.alertState(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		return done(s), fmt.Sprintf("state %q", s), nil
	})
}
