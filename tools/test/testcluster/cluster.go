// Package testcluster runs a real single-node Kubernetes cluster on this
// machine, from upstream components, for the project's end-to-end tests:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
// kube-proxy as plain processes, a containerd of its own, and Traefik as the
// ingress controller inside the cluster. Config names every address and
// path; Up, Down, Status and Load are the commands of cmd/testcluster.
//
// Tests build a Config (ConfigFromEnv) for the paths and addresses
// (KubeconfigPath, KubectlPath, IngressAddr) and a Cluster on their runner
// for Ready, Load and DaemonPIDs.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/progress"
	"scalable-app/tools/test/testcluster/images"
)

// Cluster drives the test cluster described by its Config.
type Cluster struct {
	cfg       Config
	run       *command.Runner
	out       *progress.Printer
	stdout    io.Writer
	sourceDir string

	// Seams for unit tests: what the cluster changes on the machine
	// besides running commands, and how it probes its daemons.
	host  host
	ready readiness
}

// New returns a Cluster that runs its commands with run and prints progress
// to stdout. sourceDir is the repository root, needed only to build binaries
// on a cache miss.
func New(cfg Config, run *command.Runner, stdout io.Writer, sourceDir string) *Cluster {
	c := &Cluster{
		cfg:       cfg,
		run:       run,
		out:       progress.New(stdout),
		stdout:    stdout,
		sourceDir: sourceDir,
		host:      osHost{},
	}
	c.ready = &liveReadiness{cluster: c}
	return c
}

// Config returns the cluster's configuration.
func (c *Cluster) Config() Config { return c.cfg }

// ErrNotRoot is returned by every command that changes the host.
var ErrNotRoot = errors.New("the test cluster needs root (it starts a kubelet, changes iptables and network interfaces): run it as root, e.g. sudo make cluster-up")

func (c *Cluster) requireRoot() error {
	if !c.host.isRoot() {
		return ErrNotRoot
	}
	return nil
}

// openCommandLog sends the runner's log to the state directory.
func (c *Cluster) openCommandLog() (func(), error) {
	if err := os.MkdirAll(c.cfg.LogDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(c.cfg.LogDir(), "commands.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open command log: %w", err)
	}
	c.run.SetLog(f)
	return func() { c.run.SetLog(io.Discard); f.Close() }, nil
}

// openCommandLogIfState opens the command log when the state directory
// exists; commands run before any cluster was started are not logged, so
// that a read-only command does not create the state directory.
func (c *Cluster) openCommandLogIfState() (func(), error) {
	if _, err := os.Stat(c.cfg.StateDir); err != nil {
		return func() {}, nil
	}
	return c.openCommandLog()
}

// lock serialises up, down and load across processes.
func (c *Cluster) lock() (func(), error) {
	path := c.lockPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(c.stdout, "waiting for another testcluster command to finish (lock %s)\n", path)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return func() { f.Close() }, nil
}

func (c *Cluster) lockPath() string {
	return filepath.Join(filepath.Dir(c.cfg.StateDir), "."+filepath.Base(c.cfg.StateDir)+".lock")
}

func (c *Cluster) store() images.Store {
	return images.Store{Runner: c.run, Socket: c.cfg.ContainerdSocket()}
}

// Ready returns nil when the API server answers, the node is Ready and the
// ingress controller serves.
func (c *Cluster) Ready(ctx context.Context) error {
	defer c.ready.close()
	return c.check(ctx)
}

// DaemonPIDs returns the live PIDs of the cluster's daemons by name.
func (c *Cluster) DaemonPIDs() map[string]int {
	m := map[string]int{}
	for _, d := range c.daemons() {
		if pid := c.host.alive(c.pidFile(d)); pid != 0 {
			m[d.name] = pid
		}
	}
	return m
}
