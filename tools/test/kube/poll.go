package kube

import (
	"context"
	"fmt"
	"time"
)

// Poll calls check every interval until it reports done, returns an error, or
// timeout passes. check also describes what it saw; the timeout error quotes
// the last description, so a failure says where the wait got stuck. What a
// check saw once the deadline has passed is not kept: its own request was
// most likely cut short by that deadline (a dial fails with "i/o timeout" a
// moment before ctx.Err() says so), and the one before says more.
func Poll(ctx context.Context, timeout, interval time.Duration, what string, check func(context.Context) (done bool, status string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := "nothing observed yet"
	for {
		done, status, err := check(ctx)
		cut := ctx.Err() != nil || !time.Now().Before(deadline)
		if status != "" && !cut {
			last = status
		}
		if err != nil && !cut {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
		if cut {
			return fmt.Errorf("%s: not done after %s; last seen: %s", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not done after %s; last seen: %s", what, timeout, last)
		case <-tick.C:
		}
	}
}
