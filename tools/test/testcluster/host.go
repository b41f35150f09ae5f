package testcluster

import (
	"context"
	"errors"
	"os"
	"time"

	"scalable-app/tools/test/testcluster/network"
	"scalable-app/tools/test/testcluster/proc"
)

// host is the machine state the cluster reads and changes outside the
// commands it runs: processes, sysctls, cgroups, mounts and interfaces. The
// cluster uses osHost; unit tests put a fake in its place, so the start and
// stop steps run without root.
type host interface {
	isRoot() bool
	alive(pf proc.PIDFile) int // the recorded PID if that program still runs, else 0
	running(pid int) bool
	terminate(pid int, grace time.Duration)
	withArg(arg string) []int // processes with arg as one argument

	bridgeNetfilter() error // nil when br_netfilter is loaded
	setSysctl(key, value string) error
	saveSysctls(path string) error
	restoreSysctls(path string) ([]string, error)

	ensureCgroupRoot(name string) error
	killCgroupTree(name string) (int, error)

	unmountUnder(dir string) (int, error)
	mountsUnder(dir string) ([]string, error)
	linkExists(name string) bool
}

// osHost is this machine.
type osHost struct{}

func (osHost) isRoot() bool                           { return os.Geteuid() == 0 }
func (osHost) alive(pf proc.PIDFile) int              { return pf.Alive() }
func (osHost) running(pid int) bool                   { return proc.Running(pid) }
func (osHost) terminate(pid int, grace time.Duration) { proc.Terminate(pid, grace) }
func (osHost) withArg(arg string) []int               { return proc.WithArg(arg) }
func (osHost) bridgeNetfilter() error {
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		return errors.New("the br_netfilter kernel module is not loaded (no /proc/sys/net/bridge): load it (modprobe br_netfilter) and retry")
	}
	return nil
}
func (osHost) setSysctl(key, value string) error { return network.SetSysctl(key, value) }
func (osHost) saveSysctls(path string) error     { return network.SaveSysctls(path) }
func (osHost) restoreSysctls(path string) ([]string, error) {
	return network.RestoreSysctls(path)
}
func (osHost) ensureCgroupRoot(name string) error       { return proc.EnsureCgroupRoot(name) }
func (osHost) killCgroupTree(name string) (int, error)  { return proc.KillCgroupTree(name) }
func (osHost) unmountUnder(dir string) (int, error)     { return proc.UnmountUnder(dir) }
func (osHost) mountsUnder(dir string) ([]string, error) { return proc.MountsUnder(dir) }
func (osHost) linkExists(name string) bool              { return network.LinkExists(name) }

// step is one named step of a start or stop, run in table order.
type step struct {
	name string
	run  func(ctx context.Context) error
}
