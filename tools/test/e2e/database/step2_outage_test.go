//go:build e2e

package database

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/test/kube"
)

// The database's pod is deleted under a write load that never retries:
// writes get 503 quickly while it is away, succeed again once it is back with
// no app restart, and every message that got a 201 is still there (the volume
// kept it).
func (st *suite) testStep2DatabasePodDeleteUnderWriteLoad(t *testing.T) {
	ctx := stepContext(t, 6*time.Minute)
	k := st.target.Kubectl
	appBefore, err := k.WaitReadyPods(ctx, namespace, appSelector, 2, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	db, err := k.WaitReadyPods(ctx, namespace, dbSelector, 1, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	w := &writers{st: st, clients: 4, pause: 50 * time.Millisecond, prefix: st.runID + " outage"}
	if err := w.start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	deleted := time.Now()
	if _, err := k.Output(ctx, "delete", "pod", "-n", namespace, db[0].Name, "--wait=false"); err != nil {
		w.finish()
		t.Fatal(err)
	}
	// Back: a new pod of the StatefulSet, Ready.
	err = kube.Poll(ctx, 3*time.Minute, 250*time.Millisecond, "PostgreSQL's new pod to be Ready", func(ctx context.Context) (bool, string, error) {
		pods, err := k.Pods(ctx, namespace, dbSelector)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, p := range pods {
			if p.UID != db[0].UID && p.Ready && !p.Terminating {
				return true, "", nil
			}
		}
		return false, kube.Describe(pods), nil
	})
	if err != nil {
		w.finish()
		t.Fatal(err)
	}
	back := time.Now()
	// Writes must succeed again by themselves: wait for 2 s of 201s only.
	err = kube.Poll(ctx, time.Minute, 250*time.Millisecond, "writes to succeed again after the database returned", func(context.Context) (bool, string, error) {
		recent := w.since(time.Now().Add(-2 * time.Second))
		if len(recent) == 0 || recent[0].at.Before(back) {
			return false, "waiting for 2 s of answers after the database returned", nil
		}
		for _, o := range recent {
			if o.status != http.StatusCreated {
				return false, fmt.Sprintf("still failing: status %d %v", o.status, o.err), nil
			}
		}
		return true, "", nil
	})
	outcomes := w.finish()
	if err != nil {
		t.Fatal(err)
	}

	var created, unavailable, noAnswer, other int
	var slowest503 time.Duration
	var first503, last503 time.Time
	acked := map[int64]string{}
	for _, o := range outcomes {
		switch {
		case o.err != nil:
			noAnswer++
			if noAnswer <= 5 {
				t.Errorf("message %q got no answer: %v", o.text, o.err)
			}
		case o.status == http.StatusCreated:
			created++
			acked[o.id] = o.text
		case o.status == http.StatusServiceUnavailable:
			unavailable++
			slowest503 = max(slowest503, o.took)
			if first503.IsZero() {
				first503 = o.at
			}
			last503 = o.at
			if o.retryAfter != "2" || !strings.HasPrefix(o.contentType, "application/problem+json") {
				t.Errorf("a 503 with Retry-After %q and Content-Type %q, want 2 and application/problem+json", o.retryAfter, o.contentType)
			}
		default:
			other++
			if other <= 5 {
				t.Errorf("message %q: status %d, want 201 or 503", o.text, o.status)
			}
		}
	}
	t.Logf("writers: %s", w.describe())
	t.Logf("%d writes: %d created, %d answered 503 (the slowest in %s), %d without an answer, %d other; database pod deleted, new pod Ready %s later",
		len(outcomes), created, unavailable, slowest503.Round(time.Millisecond), noAnswer, other, back.Sub(deleted).Round(100*time.Millisecond))
	if unavailable > 0 {
		t.Logf("503s from %s to %s after the delete", first503.Sub(deleted).Round(100*time.Millisecond), last503.Sub(deleted).Round(100*time.Millisecond))
	} else {
		t.Errorf("no write got a 503: the outage was not seen, so this step proved nothing")
	}
	if slowest503 > 2*time.Second {
		t.Errorf("the slowest 503 took %s: during an outage the API must answer within 2 s", slowest503)
	}

	// Every acknowledged write is there.
	msgs, err := st.all(ctx, st.ingress)
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]string{}
	for _, m := range msgs {
		have[m.ID] = m.Text
	}
	lost := 0
	for id, text := range acked {
		if have[id] != text {
			lost++
			if lost <= 5 {
				t.Errorf("message %d (%q) got a 201 but is not in the database now", id, text)
			}
		}
	}
	t.Logf("%d acknowledged writes, %d lost", len(acked), lost)

	// No app pod restarted: the pool recovered by itself.
	appAfter, err := k.Pods(ctx, namespace, appSelector)
	if err != nil {
		t.Fatal(err)
	}
	restarts := map[string]int{}
	for _, p := range appAfter {
		restarts[p.UID] = p.Restarts
	}
	for _, p := range appBefore {
		if r, ok := restarts[p.UID]; !ok || r != p.Restarts {
			t.Errorf("app pod %s was replaced or restarted during the outage (restarts %d, then %d, present %v)", p.Name, p.Restarts, r, ok)
		}
	}
}
