// Package reload is a hot reloader for Go programs: it watches a source
// tree, rebuilds the program on every change and replaces the running
// process without ever closing its listening socket.
//
// The reloader binds the port once and hands the socket to each new process
// as fd 3 (the systemd socket-activation protocol: LISTEN_FDS, LISTEN_PID).
// The old process is stopped only once the new one accepts connections,
// and connections that arrive in between wait in the kernel's backlog: no
// client is ever refused, which keeps `kubectl port-forward` alive across
// reloads. When a build fails or the app dies, the reloader itself answers
// on the socket with a 500 page showing the compiler or crash output.
package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"scalable-app/tools/internal/command"
)

// Config is the reloader's settings. Zero values take the defaults of
// DefaultConfig, and Excludes add to DefaultExcludes.
type Config struct {
	Dir      string       // source tree to watch and build in
	Package  string       // package to build, relative to Dir
	Addr     string       // address to bind when Listener is nil
	Listener net.Listener // an already bound listener (socket activation, tests)

	// Runner runs the builds and the app; required.
	Runner *command.Runner

	GoCmd      string   // the go command
	BuildFlags []string // extra go build flags
	OutDir     string   // where binaries go; default a new temporary directory removed at exit
	AppArgs    []string // arguments of the app
	Env        []string // added to the reloader's environment for the app

	Watch        string        // WatchAuto, WatchPoll or WatchInotify
	PollInterval time.Duration // time between two scans
	Debounce     time.Duration // quiet time that ends a burst of saves
	Excludes     []string      // added to DefaultExcludes

	ReadyTimeout time.Duration // longest wait for a new app to accept
	StopTimeout  time.Duration // time an app gets to drain after SIGTERM

	Shim string // executable that calls ExecIfShim first; default this executable

	Stdout, Stderr io.Writer    // where the app's output is copied; default os.Stdout/os.Stderr
	Logger         *slog.Logger // default: text to os.Stderr

	// OnCycle, when set, is called after every cycle (tests, benchmarks).
	OnCycle func(Cycle)
}

// DefaultConfig is the configuration the zero values of a Config stand for,
// and the defaults of hotreload's flags.
func DefaultConfig() Config {
	return Config{
		Dir:          ".",
		Package:      "./cmd/scalable-app",
		Addr:         ":5000",
		GoCmd:        "go",
		Watch:        WatchAuto,
		PollInterval: 200 * time.Millisecond,
		Debounce:     50 * time.Millisecond,
		ReadyTimeout: 15 * time.Second,
		// Above the app's own shutdown timeout (20 s), so a draining app is
		// never killed mid-request.
		StopTimeout: 25 * time.Second,
	}
}

// Cycle is the outcome of one rebuild.
type Cycle struct {
	Changed []string
	Build   time.Duration
	Start   time.Duration // from starting the new app until it accepted
	Result  string        // "reloaded", "unchanged", "build failed", "app exited"
}

func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func orPositive(v *time.Duration, def time.Duration) {
	if *v <= 0 {
		*v = def
	}
}

func (c *Config) setDefaults() error {
	if c.Runner == nil {
		return errors.New("no command runner in the configuration")
	}
	def := DefaultConfig()
	orDefault(&c.Dir, def.Dir)
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return fmt.Errorf("source directory: %w", err)
	}
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return fmt.Errorf("source directory %s does not exist or is not a directory", c.Dir)
	}
	c.Dir = dir
	orDefault(&c.Package, def.Package)
	orDefault(&c.Addr, def.Addr)
	orDefault(&c.GoCmd, def.GoCmd)
	if _, err := exec.LookPath(c.GoCmd); err != nil {
		return fmt.Errorf("go command %q not found: install Go or pass --go", c.GoCmd)
	}
	orDefault(&c.Watch, def.Watch)
	switch c.Watch {
	case WatchAuto, WatchPoll, WatchInotify:
	default:
		return fmt.Errorf("invalid watch mode %q: must be auto, poll or inotify", c.Watch)
	}
	orPositive(&c.PollInterval, def.PollInterval)
	orPositive(&c.Debounce, def.Debounce)
	orPositive(&c.ReadyTimeout, def.ReadyTimeout)
	orPositive(&c.StopTimeout, def.StopTimeout)
	c.Excludes = append(DefaultExcludes(), c.Excludes...)
	if c.Shim == "" {
		if c.Shim, err = os.Executable(); err != nil {
			return fmt.Errorf("own executable: %w", err)
		}
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return nil
}

// inside reports whether path is dir or below it.
func inside(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

type reloader struct {
	cfg     Config
	sock    *os.File // the shared listening socket, for children and the error page
	sockIno uint64
	builder *builder
	log     *slog.Logger

	changes <-chan []string // batches of changed files, from the watcher

	current  *app          // the app serving, if any
	failed   *errorServer  // the error page serving, if any
	draining chan struct{} // closed when the last stopped app has exited
}

// Run binds the socket (unless cfg.Listener is set), builds and starts the
// app, and reloads it on every change until ctx is cancelled; then it stops
// the app gracefully and returns nil.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			var sysErr *os.SyscallError
			if errors.As(err, &sysErr) {
				err = sysErr.Err
			}
			return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
	}
	defer ln.Close()
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("listener %T has no file descriptor to pass on", ln)
	}
	sock, err := dupFile(sc)
	if err != nil {
		return err
	}
	defer sock.Close()
	ino, err := inodeOf(sock)
	if err != nil {
		return fmt.Errorf("socket inode: %w", err)
	}

	outDir := cfg.OutDir
	if outDir == "" {
		if outDir, err = os.MkdirTemp("", "hotreload-"); err != nil {
			return fmt.Errorf("build directory: %w", err)
		}
		defer os.RemoveAll(outDir)
	} else if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("build directory: %w", err)
	}
	if outDir, err = filepath.Abs(outDir); err != nil {
		return fmt.Errorf("build directory: %w", err)
	}
	if inside(outDir, cfg.Dir) {
		return fmt.Errorf("build directory %s is inside the source tree %s: the reloader never writes there", outDir, cfg.Dir)
	}

	w, err := newWatcher(cfg.Dir, cfg.Excludes, cfg.Watch, cfg.PollInterval, cfg.Debounce, cfg.Logger)
	if err != nil {
		return err
	}
	r := &reloader{
		cfg:     cfg,
		sock:    sock,
		sockIno: ino,
		builder: &builder{run: cfg.Runner, goCmd: cfg.GoCmd, dir: cfg.Dir, pkg: cfg.Package, flags: cfg.BuildFlags, outDir: outDir},
		log:     cfg.Logger,
	}
	r.log.Info("hotreload started", "addr", ln.Addr().String(), "dir", cfg.Dir, "package", cfg.Package,
		"watch", cfg.Watch, "poll_interval", cfg.PollInterval.String(), "out", outDir)

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	changes := make(chan []string)
	r.changes = changes
	watchErr := make(chan error, 1)
	go func() { watchErr <- w.run(watchCtx, changes) }()

	r.cycle(ctx, nil)
	for {
		var exited <-chan struct{}
		if r.current != nil {
			exited = r.current.done
		}
		select {
		case <-ctx.Done():
			r.shutdown()
			return nil
		case err := <-watchErr:
			r.shutdown()
			return err
		case changed := <-changes:
			r.cycle(ctx, changed)
		case <-exited:
			a := r.current
			r.current = nil
			if !a.stopping.Load() {
				r.fail(failure{
					Title:  "App exited",
					Detail: fmt.Sprintf("the app exited (%s) after running %s; its last output follows", a.exitStatus(), time.Since(a.started).Round(time.Millisecond)),
					Output: a.tail.String(),
					At:     time.Now(),
				})
				r.log.Error("app exited", "status", a.exitStatus(), "pid", a.pid())
			}
		}
	}
}

// changedMeanwhile returns the next batch of changes when one is ready or
// arrives within two debounce periods (the last save of the burst may have
// landed just before the build ended), else nil.
func (r *reloader) changedMeanwhile(ctx context.Context) []string {
	if r.changes == nil {
		return nil
	}
	t := time.NewTimer(2 * r.cfg.Debounce)
	defer t.Stop()
	select {
	case more := <-r.changes:
		return more
	case <-t.C:
		return nil
	case <-ctx.Done():
		return nil
	}
}

// cycle builds, and on success starts the new app and retires the old one.
// The old app, or the error page, keeps serving throughout.
func (r *reloader) cycle(ctx context.Context, changed []string) {
	t0 := time.Now()
	res := r.builder.build(ctx)
	if ctx.Err() != nil {
		os.Remove(res.binary)
		return
	}
	c := Cycle{Changed: changed, Build: res.duration}
	report := true // a cycle cut short by shutdown is not reported
	defer func() {
		if report && r.cfg.OnCycle != nil {
			r.cfg.OnCycle(c)
		}
	}()
	changedAttr := slog.String("changed", summarize(changed))
	if res.err != nil {
		// A file saved by truncating and writing can be built half-saved.
		// When the tree changed again, that failure says nothing: build again.
		if more := r.changedMeanwhile(ctx); more != nil {
			report = false
			r.log.Info("build failed on files that changed while it ran: building again", changedAttr, "then", summarize(more))
			r.cycle(ctx, more)
			return
		}
		c.Result = "build failed"
		r.fail(failure{
			Title:   "Build failed",
			Detail:  fmt.Sprintf("go build %s failed after %s", r.cfg.Package, res.duration.Round(time.Millisecond)),
			Output:  string(res.output),
			Changed: changed,
			At:      time.Now(),
		})
		r.log.Error("build failed", changedAttr, "build", res.duration.Round(time.Millisecond).String(),
			"error", firstLine(res.output))
		// The whole compiler output, as the go command printed it.
		fmt.Fprint(r.cfg.Stderr, indent(string(res.output)))
		return
	}
	if r.current != nil && sameFile(r.current.binary, res.binary) {
		os.Remove(res.binary)
		c.Result = "unchanged"
		r.log.Info("unchanged: same binary, app kept", changedAttr, "build", res.duration.Round(time.Millisecond).String())
		return
	}

	a, err := r.startApp(ctx, res.binary)
	if err != nil {
		c.Result = "app exited"
		os.Remove(res.binary)
		r.fail(failure{Title: "App did not start", Detail: err.Error(), Changed: changed, At: time.Now()})
		r.log.Error("app did not start", changedAttr, "error", err)
		return
	}
	ready := r.waitAccepting(ctx, a)
	if ctx.Err() != nil {
		// Shutdown while the new build started: not a failure. The new
		// process is stopped like any other, and shutdown waits for it.
		report = false
		r.retire(a)
		r.log.Info("stopping the new build before it took over", changedAttr, "pid", a.pid())
		return
	}
	if !ready {
		c.Result = "app exited"
		a.stopping.Store(true) // reported here, not as a crash later
		r.fail(failure{
			Title:   "App exited at start-up",
			Detail:  fmt.Sprintf("the new build exited (%s) before it accepted connections; its output follows", a.exitStatus()),
			Output:  a.tail.String(),
			Changed: changed,
			At:      time.Now(),
		})
		os.Remove(a.binary)
		r.log.Error("app exited at start-up", changedAttr, "build", res.duration.Round(time.Millisecond).String(),
			"status", a.exitStatus())
		return
	}
	c.Start = time.Since(a.started)
	c.Result = "reloaded"
	old := r.current
	r.current = a
	if r.failed != nil {
		r.failed.stop()
		r.failed = nil
	}
	if old != nil {
		r.retire(old)
	}
	verb := "started"
	if changed != nil {
		verb = "reloaded"
	}
	r.log.Info(verb, changedAttr, "build", res.duration.Round(time.Millisecond).String(),
		"start", c.Start.Round(time.Millisecond).String(), "total", time.Since(t0).Round(time.Millisecond).String(),
		"pid", a.pid())
}

// waitAccepting waits until the new app accepts on the shared socket. It
// returns false if the app exits first. Where readiness cannot be observed,
// or the app does not use epoll, the app counts as ready after ReadyTimeout.
func (r *reloader) waitAccepting(ctx context.Context, a *app) bool {
	deadline := time.Now().Add(r.cfg.ReadyTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := accepting(a.pid(), r.sockIno)
		if ok {
			return true
		}
		if err != nil && a.exited() {
			return false
		}
		if time.Now().After(deadline) {
			r.log.Warn("app not seen accepting; treating it as ready", "after", r.cfg.ReadyTimeout.String())
			return true
		}
		select {
		case <-a.done:
			return false
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// fail stops the app and makes the error page answer on the socket.
func (r *reloader) fail(f failure) {
	page, err := serveFailure(r.sock, f)
	if err != nil {
		r.log.Error("error page", "error", err)
	}
	if r.failed != nil {
		r.failed.stop()
	}
	r.failed = page
	if r.current != nil {
		r.retire(r.current)
		r.current = nil
	}
}

// retire stops an app in the background: it finishes its requests in
// flight while the new app (or the error page) takes new connections.
func (r *reloader) retire(a *app) {
	a.stopping.Store(true)
	prev := r.draining
	done := make(chan struct{})
	r.draining = done
	go func() {
		a.stop(r.cfg.StopTimeout)
		os.Remove(a.binary)
		if prev != nil {
			<-prev
		}
		close(done)
	}()
}

func (r *reloader) shutdown() {
	r.log.Info("stopping")
	if r.current != nil {
		r.retire(r.current)
		r.current = nil
	}
	if r.draining != nil {
		<-r.draining
	}
	if r.failed != nil {
		r.failed.stop()
		r.failed = nil
	}
	r.log.Info("stopped")
}

// summarize lists up to five changed files for the log line.
func summarize(changed []string) string {
	if changed == nil {
		return "(first build)"
	}
	if len(changed) <= 5 {
		return strings.Join(changed, ",")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(changed[:5], ","), len(changed)-5)
}

func firstLine(out []byte) string {
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	return strings.TrimSpace(string(out))
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "    " + strings.Join(lines, "\n    ") + "\n"
}
