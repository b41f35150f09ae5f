//go:build e2e

package database

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/test/kube"
)

// A rollout restart of the app under a POST load whose client, as a careful
// client does, sends a message again with the same Idempotency-Key when its
// answer is lost: every message is created, and none twice.
func (st *suite) testStep3RolloutWithIdempotentRetries(t *testing.T) {
	ctx := stepContext(t, 6*time.Minute)
	k := st.target.Kubectl
	before, err := k.WaitReadyPods(ctx, namespace, appSelector, 2, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	prefix := st.runID + " rollout"
	w := &writers{st: st, clients: 4, pause: 50 * time.Millisecond, retry: true, retryFor: 30 * time.Second, prefix: prefix}
	if err := w.start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	start := time.Now()
	_, err = k.Output(ctx, "rollout", "restart", "deployment/scalable-app", "-n", namespace)
	if err == nil {
		_, err = k.Output(ctx, "rollout", "status", "deployment/scalable-app", "-n", namespace, "--timeout=3m")
	}
	if err == nil {
		err = k.WaitGone(ctx, namespace, kube.Names(before), 2*time.Minute)
	}
	took := time.Since(start)
	time.Sleep(time.Second)
	outcomes := w.finish()
	if err != nil {
		t.Fatal(err)
	}

	failed, retried, replayed := 0, 0, 0
	got := map[string]int64{} // text -> the id its client was given
	for _, o := range outcomes {
		if o.attempts > 1 {
			retried++
		}
		if o.replayed {
			replayed++
		}
		if o.err != nil || o.status != http.StatusCreated {
			failed++
			if failed <= 5 {
				t.Errorf("message %q not created after %d attempts: status %d %v", o.text, o.attempts, o.status, o.err)
			}
			continue
		}
		got[o.text] = o.id
	}
	t.Logf("writers: %s", w.describe())
	t.Logf("rollout restart done and old pods gone in %s; %d messages: %d failed, %d needed a retry, %d answered by a replay",
		took.Round(100*time.Millisecond), len(outcomes), failed, retried, replayed)

	msgs, err := st.all(ctx, st.ingress)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string][]int64{}
	for _, m := range msgs {
		if strings.HasPrefix(m.Text, prefix+" ") {
			stored[m.Text] = append(stored[m.Text], m.ID)
		}
	}
	duplicates, missing := 0, 0
	for text, ids := range stored {
		if len(ids) > 1 {
			duplicates++
			if duplicates <= 5 {
				t.Errorf("message %q stored %d times (ids %v)", text, len(ids), ids)
			}
		}
	}
	for text, id := range got {
		if ids := stored[text]; len(ids) != 1 || ids[0] != id {
			missing++
			if missing <= 5 {
				t.Errorf("message %q: its client was given id %d, the database holds %v", text, id, ids)
			}
		}
	}
	t.Logf("%d messages stored for %d created: %d duplicates, %d missing or with another id", len(stored), len(got), duplicates, missing)
}
