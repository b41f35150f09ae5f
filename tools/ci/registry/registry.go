// Package registry runs the pipeline's OCI registry on this machine: the
// Distribution registry (Debian's docker-registry package), listening on
// 127.0.0.1 only, at kind's local-registry name localhost:5001. Docker
// pushes to it without TLS (Docker trusts 127.0.0.0/8), and the test
// cluster's containerd pulls from it (its hosts.toml names it), so a
// deployment pulls by digest as on a real cluster.
//
// Only the package's binary is used: it is extracted from the .deb into a
// cache keyed by the package version, never installed, because installing
// it starts a system service on port 5000, the service's own port.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"scalable-app/tools/internal/aptget"
	"scalable-app/tools/internal/cachedir"
	"scalable-app/tools/internal/command"
)

// Name is how images in the registry are named ("localhost:5001/scalable-app"),
// and Addr where it listens.
const (
	Name = "localhost:5001"
	Addr = "127.0.0.1:5001"
)

// Package is the Debian package whose binary is the registry.
const Package = "docker-registry"

// Defaults, outside any checkout.
const (
	DefaultStateDir = "/var/lib/scalable-app/registry"
	DefaultCacheDir = "/var/cache/scalable-app/registry"
)

// Registry is the local registry's files and the runner it starts with.
type Registry struct {
	StateDir string // config, storage, pid and log; removed by Down
	CacheDir string // the extracted binary, one directory per package version
	Run      *command.Runner
	Log      io.Writer // progress lines
}

// New returns the registry at the default directories.
func New(run *command.Runner, log io.Writer) *Registry {
	if log == nil {
		log = io.Discard
	}
	return &Registry{StateDir: DefaultStateDir, CacheDir: DefaultCacheDir, Run: run, Log: log}
}

func (r *Registry) pidFile() string { return filepath.Join(r.StateDir, "registry.pid") }

// LogPath is the registry's own log.
func (r *Registry) LogPath() string { return filepath.Join(r.StateDir, "registry.log") }

// Answers reports whether a registry serves the v2 API at Addr.
func Answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+Addr+"/v2/", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && resp.Header.Get("Docker-Distribution-Api-Version") == "registry/2.0"
}

// Up starts the registry unless one answers already. It reports whether it
// started one, so a caller that did can stop it again.
func (r *Registry) Up(ctx context.Context) (started bool, err error) {
	if Answers(ctx) {
		return false, nil
	}
	if os.Geteuid() != 0 {
		return false, fmt.Errorf("no registry answers at %s and starting one needs root (or start your own there)", Addr)
	}
	if c, err := net.DialTimeout("tcp", Addr, time.Second); err == nil {
		c.Close()
		return false, fmt.Errorf("%s is taken by a program that is not a registry: stop it (`ss -ltnp` names it)", Addr)
	}
	bin, err := r.binary(ctx)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Join(r.StateDir, "data"), 0o700); err != nil {
		return false, fmt.Errorf("create the registry's state directory: %w", err)
	}
	conf := filepath.Join(r.StateDir, "config.yml")
	if err := os.WriteFile(conf, []byte(config(r.StateDir)), 0o600); err != nil {
		return false, fmt.Errorf("write the registry's configuration: %w", err)
	}
	pid, err := r.Run.Daemon(command.Cmd{What: "start the registry", Name: bin, Args: []string{"serve", conf}}, r.LogPath())
	if err != nil {
		return false, err
	}
	if err := os.WriteFile(r.pidFile(), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return false, fmt.Errorf("record the registry's pid: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !Answers(ctx) {
		if syscall.Kill(pid, 0) != nil {
			return false, fmt.Errorf("the registry exited at start-up; its log, %s, ends:\n%s", r.LogPath(), logTail(r.LogPath()))
		}
		if time.Now().After(deadline) {
			r.stop(pid)
			return false, fmt.Errorf("the registry did not answer at %s within 30s; its log: %s", Addr, r.LogPath())
		}
		select {
		case <-ctx.Done():
			r.stop(pid)
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Fprintf(r.Log, "registry %s serving at %s (pid %d, log %s)\n", Name, Addr, pid, r.LogPath())
	return true, nil
}

// Down stops the registry this package started and removes its state,
// images included. A registry it did not start is left alone.
func (r *Registry) Down() error {
	b, err := os.ReadFile(r.pidFile())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read the registry's pid: %w", err)
	}
	if err == nil {
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("read the registry's pid from %s: %w", r.pidFile(), err)
		}
		if err := r.stop(pid); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(r.StateDir); err != nil {
		return fmt.Errorf("remove the registry's state: %w", err)
	}
	return nil
}

// stop ends pid if it is the registry: a pid file outlives a reboot, and
// its number may belong to another process by then.
func (r *Registry) stop(pid int) error {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), Package) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop the registry (pid %d): %w", pid, err)
	}
	for range 100 {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return nil
}

// binary returns the registry program, extracting it from Debian's package
// into the cache on a miss.
func (r *Registry) binary(ctx context.Context) (string, error) {
	version, err := aptget.Candidate(ctx, r.Run, Package)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(r.CacheDir, Package+"-"+strings.NewReplacer(":", "_", "~", "_").Replace(version))
	bin := filepath.Join(dir, "usr", "bin", Package)
	if cachedir.Complete(dir) {
		return bin, nil
	}
	fmt.Fprintf(r.Log, "extracting %s %s from Debian's package into %s (once)\n", Package, version, dir)
	err = cachedir.Fill(dir, func(tmp string) error {
		deb, err := aptget.Download(ctx, r.Run, tmp, Package, version)
		if err != nil {
			return err
		}
		if err := r.Run.Run(ctx, "unpack "+filepath.Base(deb), "dpkg-deb", "-x", deb, tmp); err != nil {
			return err
		}
		return os.Remove(deb)
	})
	if err != nil {
		return "", err
	}
	return bin, nil
}

// config is the registry's configuration: storage in the state directory,
// loopback only, deletes allowed (the e2e suite cleans up after itself).
func config(stateDir string) string {
	return `version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ` + filepath.Join(stateDir, "data") + `
  delete:
    enabled: true
http:
  addr: ` + Addr + `
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`
}

// logTail is the end of a log, for an error message: the registry's state,
// log included, may be removed before anyone reads the file.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "  " + strings.Join(lines[max(0, len(lines)-10):], "\n  ")
}
