package kube

import (
	"context"
	"fmt"
	"time"
)

// Poll calls check every interval until it reports done, returns an error, or
// timeout passes. check also describes what it saw; the timeout error quotes
// the last description, so a failure says where the wait got stuck.
func Poll(ctx context.Context, timeout, interval time.Duration, what string, check func(context.Context) (done bool, status string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := "nothing observed yet"
	for {
		done, status, err := check(ctx)
		if status != "" {
			last = status
		}
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not done after %s; last seen: %s", what, timeout, last)
		case <-tick.C:
		}
	}
}
