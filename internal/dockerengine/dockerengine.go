// Package dockerengine makes sure a Docker engine answers, installing
// Debian's docker.io and starting dockerd when none runs, and stops only
// what it started.
package dockerengine

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"scalable-app/internal/aptget"
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
	started *exec.Cmd     // nil when the engine was already running
	exited  chan struct{} // closed when a started dockerd exits
}

// Started reports whether Ensure started the engine.
func (e *Engine) Started() bool { return e.started != nil }

// Stop stops dockerd if Ensure started it, and waits for it to exit.
func (e *Engine) Stop() error {
	if e.started == nil {
		return nil
	}
	p := e.started.Process
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop dockerd: %w", err)
	}
	select {
	case <-e.exited:
	case <-time.After(30 * time.Second):
		p.Kill()
		<-e.exited
	}
	e.started = nil
	return nil
}

// Ensure returns a running engine.
func Ensure(ctx context.Context, o Options) (*Engine, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if _, err := exec.LookPath("docker"); err == nil && answers(ctx) {
		return &Engine{}, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("no Docker engine answers and starting one needs root: start Docker, or run as root")
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		if err := aptget.Install(ctx, o.Log, "docker.io"); err != nil {
			return nil, fmt.Errorf("install Docker's engine: %w", err)
		}
	}

	logPath := filepath.Join(os.TempDir(), "scalable-app-dockerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create dockerd log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command("dockerd")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own session: Ctrl-C in the terminal that ran make must not kill
	// an engine meant to outlive the command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	fmt.Fprintf(o.Log, "started dockerd (pid %d, log %s)\n", cmd.Process.Pid, logPath)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e := &Engine{started: cmd, exited: exited}
	deadline := time.Now().Add(60 * time.Second)
	for !answers(ctx) {
		select {
		case <-exited:
			return nil, fmt.Errorf("dockerd exited at start-up; see %s", logPath)
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("dockerd did not answer within 60s; see %s", logPath)
		}
	}
	if o.KeepRunning {
		// Not ours to stop any more.
		e.started = nil
	}
	return e, nil
}

func answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Run() == nil
}

func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
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
func FindBuilder(ctx context.Context) (Builder, error) {
	if exec.CommandContext(ctx, "docker", "buildx", "version").Run() == nil {
		return Builder{Command: "docker"}, nil
	}
	for _, candidate := range []string{"docker", "/usr/bin/docker"} {
		out, err := exec.CommandContext(ctx, candidate, "version", "--format", "{{.Client.Version}}").Output()
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
func EnsureBuildx(ctx context.Context, log io.Writer) error {
	if exec.CommandContext(ctx, "docker", "buildx", "version").Run() == nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Client.Version}}").Output()
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
	cmd := exec.CommandContext(ctx, "go", "install", "-trimpath", buildxModule)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build buildx: %w: %s", err, lastLines(out, 5))
	}
	if err := os.MkdirAll(filepath.Dir(pluginPath), 0o755); err != nil {
		return fmt.Errorf("install buildx: %w", err)
	}
	bin, err := os.ReadFile(filepath.Join(gobin, "buildx"))
	if err != nil {
		return fmt.Errorf("install buildx: %w", err)
	}
	if err := os.WriteFile(pluginPath, bin, 0o755); err != nil {
		return fmt.Errorf("install buildx: %w", err)
	}
	fmt.Fprintf(log, "installed %s in %s\n", pluginPath, time.Since(start).Round(time.Second))
	return nil
}
