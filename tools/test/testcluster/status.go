package testcluster

import (
	"context"
	"fmt"
)

// Status prints each daemon's state and whether the cluster serves; it
// returns an error unless the cluster is fully up.
func (c *Cluster) Status(ctx context.Context) error {
	closeLog, err := c.openCommandLogIfState()
	if err != nil {
		return err
	}
	defer closeLog()
	for _, d := range c.daemons() {
		if pid := c.host.alive(c.pidFile(d)); pid != 0 {
			fmt.Fprintf(c.stdout, "%-24s running (pid %d)\n", d.name, pid)
		} else {
			fmt.Fprintf(c.stdout, "%-24s not running\n", d.name)
		}
	}
	if err := c.check(ctx); err != nil {
		fmt.Fprintf(c.stdout, "cluster: not up: %v\n", err)
		return fmt.Errorf("cluster not up")
	}
	fmt.Fprintf(c.stdout, "cluster: up (node %s Ready, ingress on %s)\n", c.cfg.NodeName, c.cfg.IngressAddr())
	return nil
}
