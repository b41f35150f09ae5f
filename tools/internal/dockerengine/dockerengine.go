// Package dockerengine makes sure a Docker engine answers, installing
// Debian's docker.io and starting dockerd when none runs, and stops only
// what it started.
package dockerengine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"scalable-app/tools/internal/aptget"
	"scalable-app/tools/internal/command"
)

// Options configure Ensure.
type Options struct {
	Log io.Writer
	// KeepRunning leaves a dockerd this call started running after the
	// program exits (for make targets); tests stop it instead.
	KeepRunning bool
}

// Engine is a running Docker engine.
type Engine struct {
	pid int // of the dockerd Ensure started and must stop; 0 when none
}

// Stop stops dockerd if Ensure started it, and waits for it to exit.
func (e *Engine) Stop() error {
	if e.pid == 0 {
		return nil
	}
	if err := syscall.Kill(e.pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop dockerd (pid %d): %w", e.pid, err)
	}
	if !exitsWithin(e.pid, 30*time.Second) {
		_ = syscall.Kill(e.pid, syscall.SIGKILL)
		exitsWithin(e.pid, 10*time.Second)
	}
	e.pid = 0
	return nil
}

// exitsWithin reports whether pid is gone (the runner reaps the daemons it
// starts) before d passes.
func exitsWithin(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// Ensure returns a running engine, running its commands with r.
func Ensure(ctx context.Context, r *command.Runner, o Options) (*Engine, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if answers(ctx, r) {
		return &Engine{}, nil
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("no Docker engine answers and starting one needs root: start Docker, or run as root")
	}
	if r.Run(ctx, "find dockerd", "dockerd", "--version") != nil {
		if err := aptget.Install(ctx, r, o.Log, "docker.io"); err != nil {
			return nil, fmt.Errorf("install Docker's engine: %w", err)
		}
	}
	// A private directory: a fixed name in /tmp could be planted by any
	// user, and dockerd runs as root.
	logDir, err := os.MkdirTemp("", "scalable-app-dockerd-")
	if err != nil {
		return nil, fmt.Errorf("create dockerd log dir: %w", err)
	}
	logPath := filepath.Join(logDir, "dockerd.log")
	// A session of its own (Daemon): Ctrl-C in the terminal that ran make
	// must not kill an engine meant to outlive the command.
	pid, err := r.Daemon(command.Cmd{What: "start dockerd", Name: "dockerd"}, logPath)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "started dockerd (pid %d, log %s)\n", pid, logPath)
	e := &Engine{pid: pid}
	deadline := time.Now().Add(60 * time.Second)
	for !answers(ctx, r) {
		if syscall.Kill(pid, 0) != nil {
			return nil, fmt.Errorf("dockerd exited at start-up; see %s", logPath)
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("dockerd did not answer within 60s; see %s", logPath)
		}
		select {
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if o.KeepRunning {
		// Not ours to stop any more.
		e.pid = 0
	}
	return e, nil
}

func answers(ctx context.Context, r *command.Runner) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.Run(ctx, "ask the Docker engine its version", "docker", "version", "--format", "{{.Server.Version}}") == nil
}

// Builder is a docker client command that builds with BuildKit, which the
// Dockerfile's cache mounts need.
type Builder struct {
	Command string
	Env     []string // added to the environment
}

// FindBuilder picks a client that builds with BuildKit: docker with the
// buildx plugin (Docker 23 and later), else a Docker 20.10 client (Debian
// bookworm's docker.io) with DOCKER_BUILDKIT=1, whose BuildKit is built in.
func FindBuilder(ctx context.Context, r *command.Runner) (Builder, error) {
	if r.Run(ctx, "look for the buildx plugin", "docker", "buildx", "version") == nil {
		return Builder{Command: "docker"}, nil
	}
	for _, candidate := range []string{"docker", "/usr/bin/docker"} {
		out, err := r.Output(ctx, "ask the docker client its version", candidate, "version", "--format", "{{.Client.Version}}")
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(out)), "20.10.") {
			return Builder{Command: candidate, Env: []string{"DOCKER_BUILDKIT=1"}}, nil
		}
	}
	return Builder{}, fmt.Errorf("no docker client here builds with BuildKit: install the buildx plugin (docker-buildx) or use Docker 20.10 with DOCKER_BUILDKIT=1")
}

// buildxModule is built from the Go module proxy when the docker client has
// no buildx plugin: Docker 23 and later build with BuildKit only through it.
const buildxModule = "github.com/docker/buildx/cmd/buildx@v0.38.2"

// pluginPath is where the docker client looks for system-wide plugins.
const pluginPath = "/usr/local/lib/docker/cli-plugins/docker-buildx"

// EnsureBuildx installs the buildx plugin when the docker client lacks it,
// so that a plain `docker build` uses BuildKit.
func EnsureBuildx(ctx context.Context, r *command.Runner, log io.Writer) error {
	if r.Run(ctx, "look for the buildx plugin", "docker", "buildx", "version") == nil {
		return nil
	}
	out, err := r.Output(ctx, "ask the docker client its version", "docker", "version", "--format", "{{.Client.Version}}")
	if err == nil && strings.HasPrefix(strings.TrimSpace(string(out)), "20.10.") {
		return nil // builds with DOCKER_BUILDKIT=1, no plugin needed
	}
	start := time.Now()
	fmt.Fprintf(log, "the docker client has no buildx plugin: building %s (a few minutes, once)\n", buildxModule)
	gobin, err := os.MkdirTemp("", "buildx-")
	if err != nil {
		return fmt.Errorf("install buildx: %w", err)
	}
	defer os.RemoveAll(gobin)
	_, err = r.Exec(ctx, command.Cmd{
		What: "build buildx", Name: "go", Args: []string{"install", "-trimpath", buildxModule},
		Env: []string{"GOBIN=" + gobin, "CGO_ENABLED=0"},
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(pluginPath), 0o755); err != nil {
		return fmt.Errorf("install buildx: %w", err)
	}
	bin, err := os.ReadFile(filepath.Join(gobin, "buildx"))
	if err != nil {
		return fmt.Errorf("install buildx: %w", err)
	}
	// Written beside it and renamed into place: another build may be
	// running the plugin right now (writing over it fails with "text file
	// busy"), and a half-written plugin must never be found.
	tmp := fmt.Sprintf("%s.partial-%d", pluginPath, os.Getpid())
	if err := os.WriteFile(tmp, bin, 0o755); err != nil {
		return fmt.Errorf("install buildx: %w", err)
	}
	if err := os.Rename(tmp, pluginPath); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install buildx: %w", err)
	}
	fmt.Fprintf(log, "installed %s in %s\n", pluginPath, time.Since(start).Round(time.Second))
	return nil
}
