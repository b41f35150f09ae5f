package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scalable-app/tools/test/testcluster/network"
	"scalable-app/tools/test/testcluster/proc"
)

// Down stops every process the cluster started and removes what it created
// on the host: pod network namespaces, mounts, cgroups, CNI cache files,
// interfaces, its own iptables chains and rules, changed sysctls, and the
// state directory. It works on a partial or crashed cluster too: a step that
// fails is reported and the later ones still run, but then the state
// directory is kept. The binary cache is kept.
func (c *Cluster) Down(ctx context.Context) error {
	if err := c.requireRoot(); err != nil {
		return err
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	closeLog, err := c.openCommandLogIfState()
	if err != nil {
		return err
	}
	defer closeLog()

	var errs []error
	for _, s := range c.downSteps(&stopState{}) {
		if err := c.out.Step(s.name, func() error { return s.run(ctx) }); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			c.out.Printf("  warning: %v", err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cluster-down left things behind (state kept in %s): %w", c.cfg.StateDir, errors.Join(errs...))
	}
	if err := c.removeState(); err != nil {
		return err
	}
	c.out.Printf("cluster down; binaries stay cached in %s", c.cfg.CacheDir)
	return nil
}

// stopState is what the stop steps hand on to later ones.
type stopState struct {
	netns []string // pod network namespaces, found while their pods still hold addresses
}

// downSteps are the steps of a stop, in order, as kind's delete does.
func (c *Cluster) downSteps(st *stopState) []step {
	return []step{
		// Node agents first, so nothing restarts pods while they are removed.
		{"stop kube-proxy, kubelet, kube-scheduler and kube-controller-manager", func(context.Context) error {
			return c.stopDaemons("kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager")
		}},
		{"find pod network namespaces", func(ctx context.Context) error {
			var err error
			st.netns, err = network.PodNetnsInCIDR(ctx, c.run, c.cfg.NetnsDir, c.cfg.ClusterCIDR)
			return err
		}},
		// Every container process lives under the kubelet's cgroup root.
		{"kill container processes", func(context.Context) error {
			n, err := c.host.killCgroupTree(c.cfg.CgroupRoot)
			if n > 0 {
				c.out.Printf("killed %d container processes", n)
			}
			return err
		}},
		{"stop containerd shims", func(context.Context) error {
			c.stopShims(2 * time.Second)
			return nil
		}},
		{"stop containerd, kube-apiserver and etcd", func(context.Context) error {
			return c.stopDaemons("containerd", "kube-apiserver", "etcd")
		}},
		// A shim that outlived containerd's stop (or a crash) is ended here.
		{"stop remaining shims", func(context.Context) error {
			c.stopShims(time.Second)
			return nil
		}},
		{"delete pod network namespaces", func(ctx context.Context) error {
			var errs []error
			for _, ns := range st.netns {
				errs = append(errs, network.DeleteNetns(ctx, c.run, ns))
			}
			return errors.Join(errs...)
		}},
		// Mounts of containers and volumes live under the state dir.
		{"unmount under the state dir", func(context.Context) error {
			n, err := c.host.unmountUnder(c.cfg.StateDir)
			if n > 0 {
				c.out.Printf("unmounted %d mounts", n)
			}
			return err
		}},
		{"remove CNI results, shim sockets and container log links", func(context.Context) error { return c.removeFiles() }},
		{"remove the cluster's iptables chains", c.removeChains},
		{"delete interfaces " + c.cfg.CNIBridge + " and " + c.cfg.NodeBridge, func(ctx context.Context) error {
			var errs []error
			for _, link := range []string{c.cfg.CNIBridge, c.cfg.NodeBridge} {
				if c.host.linkExists(link) {
					errs = append(errs, network.DeleteLink(ctx, c.run, link))
				}
			}
			return errors.Join(errs...)
		}},
		{"restore sysctls", func(context.Context) error {
			restored, err := c.host.restoreSysctls(filepath.Join(c.cfg.StateDir, "host-sysctls-before.json"))
			if len(restored) > 0 {
				c.out.Printf("restored sysctls %s", strings.Join(restored, " "))
			}
			return err
		}},
	}
}

// stopDaemons stops the named daemons and removes their PID files.
func (c *Cluster) stopDaemons(names ...string) error {
	var errs []error
	for _, name := range names {
		pf, err := c.daemonPIDFile(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pid := c.host.alive(pf)
		if pid != 0 {
			c.host.terminate(pid, 10*time.Second)
			c.out.Printf("stopped %s", name)
		}
		if err := os.Remove(pf.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove pid file of %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// stopShims ends the containerd shims of this cluster's containerd.
func (c *Cluster) stopShims(grace time.Duration) {
	shims := c.host.withArg(c.cfg.ContainerdSocket())
	for _, pid := range shims {
		c.host.terminate(pid, grace)
	}
	if len(shims) > 0 {
		c.out.Printf("stopped %d containerd shims", len(shims))
	}
}

// removeChains deletes the iptables chains that were not on the host before
// the cluster first started, and the rules jumping to them. Without that
// record it leaves iptables alone: it cannot tell the cluster's chains from
// the host's.
func (c *Cluster) removeChains(ctx context.Context) error {
	snapPath := filepath.Join(c.cfg.StateDir, "host-iptables-before.json")
	if _, err := os.Stat(snapPath); err != nil {
		c.out.Printf("no record of the host's iptables before the cluster: leaving iptables alone")
		return nil
	}
	before, err := network.LoadSnapshot(snapPath)
	if err != nil {
		return err
	}
	removed, err := network.RemoveOurs(ctx, c.run, before)
	if removed > 0 {
		c.out.Printf("removed %d iptables chains of the cluster (and the rules jumping to them)", removed)
	}
	return err
}

// removeState deletes the state directory, never through a mount point: a
// hostPath or subPath mount could lead out of it. When the mounts cannot be
// read it keeps the directory (fails closed).
func (c *Cluster) removeState() error {
	ms, err := c.host.mountsUnder(c.cfg.StateDir)
	if err != nil {
		return fmt.Errorf("cluster-down: cannot tell whether mounts remain under %s, so it is kept: %w", c.cfg.StateDir, err)
	}
	if len(ms) > 0 {
		return fmt.Errorf("cluster-down: %d mounts remain under %s (first %s); state kept", len(ms), c.cfg.StateDir, ms[0])
	}
	if err := os.RemoveAll(c.cfg.StateDir); err != nil {
		return fmt.Errorf("remove state dir: %w", err)
	}
	if err := os.Remove(c.lockPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove lock file: %w", err)
	}
	_ = os.Remove(filepath.Dir(c.cfg.StateDir)) // only if empty: an error says it is not
	return nil
}

// removeFiles deletes the files the CRI plugin and kubelet leave outside the
// state dir: CNI result cache entries, shim sockets of killed shims, and
// the kubelet's symlinks in the container log dir. Files already gone are
// no error.
func (c *Cluster) removeFiles() error {
	var errs []error
	remove := func(path string) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	// The CRI plugin caches one result per sandbox for our network and one
	// for its built-in loopback network ("cni-loopback-<sandbox id>-lo").
	results := c.cfg.CNIResultsDir
	cache, err := filepath.Glob(filepath.Join(results, c.cfg.CNINetwork+"-*"))
	if err != nil {
		errs = append(errs, fmt.Errorf("list CNI results: %w", err))
	}
	ids := map[string]bool{}
	for _, f := range cache {
		id := strings.TrimPrefix(filepath.Base(f), c.cfg.CNINetwork+"-")
		ids[strings.TrimSuffix(id, "-eth0")] = true
		remove(f)
	}
	sandboxes, err := os.ReadDir(filepath.Join(c.cfg.ContainerdDir(), "root", "io.containerd.grpc.v1.cri", "sandboxes"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list sandboxes: %w", err))
	}
	for _, sb := range sandboxes {
		ids[sb.Name()] = true
	}
	for id := range ids {
		remove(filepath.Join(results, "cni-loopback-"+id+"-lo"))
	}
	taskDir := filepath.Join(c.cfg.ContainerdDir(), "state", "io.containerd.runtime.v2.task")
	for _, s := range proc.ShimSockets(c.cfg.ShimSocketDir, c.cfg.ContainerdSocket(), taskDir) {
		remove(s)
	}
	links, err := filepath.Glob(filepath.Join(c.cfg.ContainerLogDir, "*.log"))
	if err != nil {
		errs = append(errs, fmt.Errorf("list container log links: %w", err))
	}
	podLogs := filepath.Join(c.cfg.StateDir, "pod-logs") + "/"
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, podLogs) {
			remove(l)
		}
	}
	return errors.Join(errs...)
}
