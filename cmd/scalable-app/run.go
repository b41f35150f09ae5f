package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"scalable-app/internal/activation"
	"scalable-app/internal/config"
	"scalable-app/internal/logging"
	"scalable-app/internal/server"
)

// Set at link time: -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = ""
)

// run is the whole program. It serves until ctx is cancelled, then shuts
// down gracefully. Everything it touches comes in as a parameter so that
// tests can run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse("scalable-app", args, getenv, stdout)
	if err != nil {
		return err
	}
	if cfg.ShowVersion {
		fmt.Fprintf(stdout, "scalable-app %s (revision %s, %s)\n", version, vcsRevision(), runtime.Version())
		return nil
	}

	logger, flushLogs, err := logging.New(stdout, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	defer flushLogs()

	instance := cfg.Instance
	if instance == "" {
		if instance, err = os.Hostname(); err != nil {
			return fmt.Errorf("instance name: %w", err)
		}
	}

	ln, inherited, err := listen(cfg, getenv)
	if err != nil {
		return err
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	health := &server.Health{}
	srv := &http.Server{
		Handler: server.New(server.Options{
			Logger:    logger,
			Registry:  registry,
			Health:    health,
			Instance:  instance,
			AccessLog: cfg.AccessLog,
		}),
		// A client that trickles its headers is cut off after this.
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		// Longer than the idle timeout of common proxies (90 s), so a proxy
		// never reuses a connection this server is closing.
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	fresh := newFreshConns()
	if inherited {
		srv.ConnState = fresh.track
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("scalable-app started",
		"addr", ln.Addr().String(), "inherited_socket", inherited,
		"version", version, "revision", vcsRevision(), "instance", instance,
		"namespace", getenv("POD_NAMESPACE")) // set by the downward API in Kubernetes

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	health.BeginShutdown()
	// Responses during the drain ask clients to reconnect, which moves
	// keep-alive connections of proxies to instances that stay.
	srv.SetKeepAlivesEnabled(false)
	logger.Info("shutdown started: readiness failing", "drain_delay", cfg.DrainDelay.String())
	serveDone := false
	if inherited {
		// The socket is shared with a supervisor that starts our successor:
		// stop accepting at once, so new connections wait in the kernel's
		// backlog for it. Connections accepted already but whose request is
		// not read yet must be read before Shutdown, which would close them
		// unanswered.
		ln.Close()
		if err := <-serveErr; !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
		}
		serveDone = true
		fresh.waitNone(cfg.ReadHeaderTimeout)
	}
	time.Sleep(cfg.DrainDelay)

	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: requests still running after %s: %w", cfg.ShutdownTimeout, err)
	}
	if !serveDone {
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
		}
	}
	logger.Info("shutdown complete")
	return nil
}

// freshConns tracks connections accepted whose first request has not been
// read yet (http.StateNew).
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newFreshConns() *freshConns {
	return &freshConns{conns: map[net.Conn]struct{}{}}
}

func (f *freshConns) track(c net.Conn, state http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state == http.StateNew {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

// waitNone waits until no connection is fresh, at most limit.
func (f *freshConns) waitNone(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		n := len(f.conns)
		f.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// listen uses the socket passed by a supervisor (systemd socket activation,
// or the hot reloader) when there is one, else binds the configured address.
func listen(cfg config.Config, getenv func(string) string) (net.Listener, bool, error) {
	ln, err := activation.Listener(getenv, os.Getpid())
	if err != nil {
		return nil, false, err
	}
	if ln != nil {
		return ln, true, nil
	}
	ln, err = net.Listen("tcp", cfg.Addr())
	if err != nil {
		return nil, false, fmt.Errorf("listen on %s: %w", cfg.Addr(), unwrapSyscall(err))
	}
	return ln, false, nil
}

// unwrapSyscall turns "listen tcp :5000: bind: address already in use" into
// its cause, since the caller already names the address.
func unwrapSyscall(err error) error {
	var sysErr *os.SyscallError
	if errors.As(err, &sysErr) {
		return sysErr.Err
	}
	return err
}

// vcsRevision is the revision set at link time, else the one the Go
// toolchain embedded, else "unknown".
func vcsRevision() string {
	if revision != "" {
		return revision
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
