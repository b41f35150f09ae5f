package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// earlyDeadline has a deadline that passes before its Done closes: the moment,
// in a real context, between a dial's deadline and ctx.Err(), made long.
type earlyDeadline struct {
	context.Context
	deadline time.Time
}

func (c earlyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

// A check that returns once the deadline has passed saw its own request cut
// short: the timeout quotes what the check saw before it, and an error it
// returns then is the deadline's, not a failure to report as such.
func TestPollKeepsWhatWasSeenBeforeTheDeadline(t *testing.T) {
	for _, fail := range []bool{false, true} {
		done, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		parent := earlyDeadline{Context: done, deadline: time.Now().Add(100 * time.Millisecond)}
		calls := 0
		err := Poll(parent, time.Minute, 10*time.Millisecond, "wait",
			func(ctx context.Context) (bool, string, error) {
				calls++
				if calls == 1 {
					return false, "the real answer", nil
				}
				d, _ := ctx.Deadline()
				time.Sleep(time.Until(d) + 5*time.Millisecond)
				if fail {
					return false, "", errors.New("i/o timeout")
				}
				return false, "i/o timeout", nil
			})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "not done after 1m0s; last seen: the real answer") {
			t.Errorf("check failing after the deadline %v: %v, want the timeout quoting the real answer", fail, err)
		}
	}
}

func TestPollReturnsACheckErrorBeforeTheDeadline(t *testing.T) {
	err := Poll(context.Background(), time.Minute, time.Millisecond, "wait",
		func(ctx context.Context) (bool, string, error) { return false, "", errors.New("refused") })
	if err == nil || err.Error() != "wait: refused" {
		t.Errorf("got %v, want wait: refused", err)
	}
}
