package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scalable-app/internal/testcluster/network"
	"scalable-app/internal/testcluster/proc"
)

// Down stops every process the cluster started and removes what it created
// on the host: pod network namespaces, mounts, cgroups, CNI cache files,
// interfaces, its own iptables chains and rules, changed sysctls, and the
// state directory. It works on a partial or crashed cluster too. The binary
// cache is kept.
func (c *Cluster) Down(ctx context.Context) error {
	if err := requireRoot(); err != nil {
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
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
			c.out.Printf("  warning: %v", err)
		}
	}

	stop := func(name string) {
		pf, err := c.daemonPIDFile(name)
		if err != nil {
			note(err)
			return
		}
		if pf.Stop(10 * time.Second) {
			c.out.Printf("stopped %s", name)
		}
	}

	// Node agents first, so nothing restarts pods while they are removed.
	for _, n := range []string{"kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"} {
		stop(n)
	}
	// Pod network namespaces are found by their addresses in our pod range.
	netns, err := network.PodNetnsInCIDR(ctx, c.run, c.cfg.ClusterCIDR)
	note(err)

	// Every container process lives under the kubelet's cgroup root.
	n, err := proc.KillCgroupTree(c.cfg.CgroupRoot)
	note(err)
	if n > 0 {
		c.out.Printf("killed %d container processes", n)
	}
	shims := proc.WithArg(c.cfg.ContainerdSocket())
	for _, pid := range shims {
		proc.Terminate(pid, 2*time.Second)
	}
	if len(shims) > 0 {
		c.out.Printf("stopped %d containerd shims", len(shims))
	}
	for _, name := range []string{"containerd", "kube-apiserver", "etcd"} {
		stop(name)
	}
	// A shim that outlived containerd's stop (or a crash) is ended here.
	for _, pid := range proc.WithArg(c.cfg.ContainerdSocket()) {
		proc.Terminate(pid, time.Second)
	}

	for _, ns := range netns {
		note(network.DeleteNetns(ctx, c.run, ns))
	}
	if len(netns) > 0 {
		c.out.Printf("deleted %d pod network namespaces", len(netns))
	}
	// Mounts of containers and volumes live under the state dir.
	um, err := proc.UnmountUnder(c.cfg.StateDir)
	note(err)
	if um > 0 {
		c.out.Printf("unmounted %d mounts", um)
	}
	c.removeFiles()

	snapPath := filepath.Join(c.cfg.StateDir, "host-iptables-before.json")
	if _, err := os.Stat(snapPath); err == nil {
		before, err := network.LoadSnapshot(snapPath)
		note(err)
		if err == nil {
			removed, err := network.RemoveOurs(ctx, c.run, before)
			note(err)
			if removed > 0 {
				c.out.Printf("removed %d iptables chains of the cluster (and the rules jumping to them)", removed)
			}
		}
	} else {
		c.out.Printf("no record of the host's iptables before the cluster: leaving iptables alone")
	}
	for _, link := range []string{c.cfg.CNIBridge, c.cfg.NodeBridge} {
		deleted, err := network.DeleteLink(ctx, c.run, link)
		note(err)
		if deleted {
			c.out.Printf("deleted interface %s", link)
		}
	}
	restored, err := network.RestoreSysctls(filepath.Join(c.cfg.StateDir, "host-sysctls-before.json"))
	note(err)
	if len(restored) > 0 {
		c.out.Printf("restored sysctls %s", strings.Join(restored, " "))
	}
	if len(errs) > 0 {
		return fmt.Errorf("cluster-down left things behind (state kept in %s): %w", c.cfg.StateDir, errors.Join(errs...))
	}
	// Never delete through a mount point: a hostPath or subPath mount could
	// lead out of the state dir.
	if ms, _ := proc.MountsUnder(c.cfg.StateDir); len(ms) > 0 {
		return fmt.Errorf("cluster-down: %d mounts remain under %s (first %s); state kept", len(ms), c.cfg.StateDir, ms[0])
	}
	if err := os.RemoveAll(c.cfg.StateDir); err != nil {
		return fmt.Errorf("remove state dir: %w", err)
	}
	_ = os.Remove(c.lockPath())
	_ = os.Remove(filepath.Dir(c.cfg.StateDir)) // only if empty
	c.out.Printf("cluster down; binaries stay cached in %s", c.cfg.CacheDir)
	return nil
}

// removeFiles deletes the files the CRI plugin and kubelet leave outside the
// state dir: CNI result cache entries, shim sockets of killed shims, and
// the kubelet's symlinks in /var/log/containers.
func (c *Cluster) removeFiles() {
	// The CRI plugin caches one result per sandbox for our network and one
	// for its built-in loopback network ("cni-loopback-<sandbox id>-lo").
	results := "/var/lib/cni/results"
	cache, _ := filepath.Glob(filepath.Join(results, c.cfg.CNINetwork+"-*"))
	ids := map[string]bool{}
	for _, f := range cache {
		id := strings.TrimPrefix(filepath.Base(f), c.cfg.CNINetwork+"-")
		ids[strings.TrimSuffix(id, "-eth0")] = true
		_ = os.Remove(f)
	}
	sandboxes, _ := os.ReadDir(filepath.Join(c.cfg.ContainerdDir(), "root", "io.containerd.grpc.v1.cri", "sandboxes"))
	for _, sb := range sandboxes {
		ids[sb.Name()] = true
	}
	for id := range ids {
		_ = os.Remove(filepath.Join(results, "cni-loopback-"+id+"-lo"))
	}
	taskDir := filepath.Join(c.cfg.ContainerdDir(), "state", "io.containerd.runtime.v2.task")
	for _, s := range proc.ShimSockets(c.cfg.ContainerdSocket(), taskDir) {
		_ = os.Remove(s)
	}
	links, _ := filepath.Glob("/var/log/containers/*.log")
	podLogs := filepath.Join(c.cfg.StateDir, "pod-logs") + "/"
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, podLogs) {
			_ = os.Remove(l)
		}
	}
}
