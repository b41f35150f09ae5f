package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"scalable-app/internal/activation"
	"scalable-app/internal/config"
	"scalable-app/internal/logging"
	"scalable-app/internal/server"
	"scalable-app/internal/store"
)

// Set at link time: -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = ""
)

// run is the whole program. It serves until ctx is cancelled, then shuts
// down gracefully. Everything it touches comes in as a parameter so that
// tests can run it in-process. Log lines go to stdout through a
// logging.Writer: stdout itself when it is one (main passes one, to flush
// it on any exit), else a new one closed on return.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse("scalable-app", args, getenv, stdout)
	if err != nil {
		return err
	}
	if cfg.ShowVersion {
		fmt.Fprintf(stdout, "scalable-app %s (revision %s, %s)\n", version, vcsRevision(), runtime.Version())
		return nil
	}

	out, ok := stdout.(*logging.Writer)
	if !ok {
		out = logging.NewWriter(stdout, logging.BufferSize)
		defer out.Close()
	}
	logger, err := logging.New(out, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}

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
	defer ln.Close()
	// The reloader starts the next process before it stops this one, both
	// on the inherited socket: a fixed metrics port would be taken.
	if inherited && !cfg.MetricsPortSet {
		cfg.MetricsPort = 0
	}
	metricsLn, err := net.Listen("tcp", cfg.MetricsAddr())
	if err != nil {
		return fmt.Errorf("listen on %s (--metrics-port): %w", cfg.MetricsAddr(), unwrapSyscall(err))
	}
	defer metricsLn.Close()

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "log_lines_dropped_total",
			Help: "Log lines dropped because stdout did not keep up, so that no request waits for it.",
		}, func() float64 { return float64(out.Dropped()) }),
	)
	maxConns := cfg.MaxConns
	if maxConns == 0 {
		maxConns = defaultMaxConns(getenv)
	}
	conns := server.NewConns(maxConns, registry)
	health := &server.Health{}
	db, database, err := openStore(cfg, getenv, logger, registry)
	if err != nil {
		return err
	}
	if db != nil {
		// Closed after the shutdown below: requests in flight use it to the end.
		defer db.Close()
	}
	opts := server.Options{
		Logger:         logger,
		Registry:       registry,
		Health:         health,
		Instance:       instance,
		AccessLog:      cfg.AccessLog,
		Store:          db,
		ModeratorToken: cfg.ModeratorToken,
	}
	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler: server.New(opts),
		// A client that trickles its headers is cut off after this.
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		// Longer than the idle timeout of common proxies (90 s), so a proxy
		// never reuses a connection this server is closing.
		IdleTimeout: cfg.IdleTimeout,
		// net/http reads up to MaxHeaderBytes + 4096 bytes of request line
		// and headers; take the slack off, so the setting means what it says.
		MaxHeaderBytes: cfg.MaxHeaderBytes - 4096,
		ConnState:      conns.ConnState,
		ErrorLog:       errorLog,
	}
	metricsSrv := &http.Server{
		Handler:           server.Metrics(opts),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          errorLog,
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(conns.Listener(ln)) }()
	metricsErr := make(chan error, 1)
	go func() { metricsErr <- metricsSrv.Serve(metricsLn) }()
	logger.Info("scalable-app started",
		"addr", ln.Addr().String(), "metrics_addr", metricsLn.Addr().String(),
		"inherited_socket", inherited, "max_conns", maxConns, "database", database,
		"version", version, "revision", vcsRevision(), "instance", instance,
		"namespace", getenv("POD_NAMESPACE")) // set by the downward API in Kubernetes

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case err := <-metricsErr:
		return fmt.Errorf("serve metrics on %s: %w", metricsLn.Addr(), err)
	case <-ctx.Done():
	}

	// From here on every response says "Connection: close" (see
	// server.Health), so keep-alive clients leave after a complete exchange.
	health.BeginShutdown()
	logger.Info("shutdown started: readiness failing", "drain_delay", cfg.DrainDelay.String())
	stopAccepting := func() error {
		ln.Close()
		if err := <-serveErr; !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
		}
		return nil
	}
	if inherited {
		// The socket is shared with a supervisor that starts our successor:
		// stop accepting at once, so new connections wait in the kernel's
		// backlog for it.
		if err := stopAccepting(); err != nil {
			return err
		}
	}
	time.Sleep(cfg.DrainDelay)
	if !inherited {
		if err := stopAccepting(); err != nil {
			return err
		}
	}
	if err := finish(srv, conns, cfg.ShutdownTimeout); err != nil {
		return err
	}
	// Metrics stay up until the service port is done, for a last scrape.
	metricsCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := metricsSrv.Shutdown(metricsCtx); err != nil {
		metricsSrv.Close()
	}
	logger.Info("shutdown complete")
	return nil
}

// openStore builds the database pool when one is configured (DATABASE_URL
// or the PG* variables) and starts applying the migrations in the
// background: the service starts whatever the database's state. It returns
// nil without a database, and how to name the database in the logs.
func openStore(cfg config.Config, getenv func(string) string, logger *slog.Logger, reg prometheus.Registerer) (*store.Store, string, error) {
	connString, ok := store.ConnString(getenv)
	if !ok {
		return nil, "none (set DATABASE_URL or PGHOST...; /api answers 503)", nil
	}
	// Checked here, not in config: it matters only with a database.
	if cfg.DBQueryTimeout >= cfg.WriteTimeout {
		return nil, "", fmt.Errorf("db-query-timeout %s (DB_QUERY_TIMEOUT) is too long: it must be below the write timeout %s, or the answer could not be written in time",
			cfg.DBQueryTimeout, cfg.WriteTimeout)
	}
	db, err := store.Open(connString, store.Config{MaxConns: cfg.DBMaxConns, QueryTimeout: cfg.DBQueryTimeout}, logger, reg)
	if err != nil {
		return nil, "", err
	}
	db.Start()
	return db, db.Target(), nil
}

// finish waits, at most timeout, for every connection to be done, closing
// those that stayed idle through the drain. It does not leave this to
// http.Server.Shutdown, which closes unanswered a connection whose request
// it reads after the shutdown began: connections accepted but not read yet
// get their answer (net/http then closes them, as every response now says
// "Connection: close"), or are cut off by the read-header timeout, which
// is shorter than timeout.
func finish(srv *http.Server, conns *server.Conns, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for conns.Open() > 0 {
		if time.Now().After(deadline) {
			srv.Close()
			return fmt.Errorf("shutdown: requests still running after %s", timeout)
		}
		conns.CloseIdle()
		time.Sleep(5 * time.Millisecond)
	}
	// Nothing is left for Shutdown but its own bookkeeping.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: requests still running after %s: %w", timeout, err)
	}
	return nil
}

// Memory an idle keep-alive connection costs (goroutine stack, bufio
// buffers, net/http's conn): 26 KiB of RSS each under a flood of idle
// connections, counting the churn of those the cap closes
// (TestIdleFloodStaysWithinMemory); 32 KiB with a margin. Connections may
// take half the memory limit.
const (
	connCost         = 32 << 10
	connShare        = 2
	maxConnsNoLimit  = 10_000
	maxConnsAtLeast  = 64
	cgroupMemoryV2   = "/sys/fs/cgroup/memory.max"
	cgroupMemoryV1   = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	unlimitedAtLeast = 1 << 50 // cgroup v1 writes "no limit" as a huge number
)

// defaultMaxConns sizes the connection cap from the memory limit: the
// smaller of GOMEMLIMIT and the cgroup's, else a constant.
func defaultMaxConns(getenv func(string) string) int {
	limit := int64(math.MaxInt64)
	if n, ok := parseMemLimit(getenv("GOMEMLIMIT")); ok {
		limit = n
	}
	for _, path := range []string{cgroupMemoryV2, cgroupMemoryV1} {
		if b, err := os.ReadFile(path); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n < unlimitedAtLeast {
				limit = min(limit, n)
			}
			break
		}
	}
	if limit == math.MaxInt64 {
		return maxConnsNoLimit
	}
	return int(max(limit/connShare/connCost, maxConnsAtLeast))
}

// parseMemLimit reads GOMEMLIMIT as the Go runtime does: a number of bytes
// with an optional unit B, KiB, MiB, GiB or TiB; "off" or empty is no limit.
func parseMemLimit(s string) (int64, bool) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	shift := uint(0)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, shift = rest, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		return 0, false
	}
	return n << shift, true
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
