// Package store is the service's PostgreSQL database: one connection pool,
// the schema migrations embedded in the binary, and every query, in plain
// SQL.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ErrUnavailable wraps every failure that is the database's state rather
	// than the request's: unreachable, restarting, too slow, schema not
	// applied yet. The client may retry.
	ErrUnavailable = errors.New("database unavailable")
	// ErrNotFound: no message has that id.
	ErrNotFound = errors.New("not found")
	// ErrKeyReused: an Idempotency-Key came back with a different request.
	ErrKeyReused = errors.New("idempotency key already used for a different request")
)

// KeyTTL is how long an idempotency key is kept, at least: the sweep runs
// every sweepInterval, so a key lives from KeyTTL to KeyTTL+sweepInterval.
const (
	KeyTTL        = 24 * time.Hour
	sweepInterval = time.Hour
)

// A connection attempt gives up after this unless the connection string
// says otherwise; requests are bounded by the query timeout anyway, and the
// background migrations should notice a dead address quickly too.
const defaultConnectTimeout = time.Second

// Config holds the settings of the pool.
type Config struct {
	MaxConns     int
	QueryTimeout time.Duration // bounds every operation, its wait for a connection included
}

// ConnString returns DATABASE_URL and whether a database is configured:
// DATABASE_URL or one of the libpq variables that choose a server.
// The other PG* variables (PGUSER, PGPASSWORD, PGPORT, PGSSLMODE, ...) are
// read by pgx from the environment, as libpq does.
func ConnString(getenv func(string) string) (string, bool) {
	url := getenv("DATABASE_URL")
	if url != "" {
		return url, true
	}
	for _, v := range []string{"PGHOST", "PGHOSTADDR", "PGDATABASE", "PGSERVICE"} {
		if getenv(v) != "" {
			return "", true
		}
	}
	return "", false
}

// Store is the database of the service. Its methods are safe for
// concurrent use.
type Store struct {
	pool         *pgxpool.Pool
	queryTimeout time.Duration
	logger       *slog.Logger
	target       string // host, port, database and user, never the password
	ready        atomic.Bool
	queries      *prometheus.HistogramVec

	stop context.CancelFunc
	done sync.WaitGroup
}

// Open builds the pool. It does not connect: connections are made on first
// use, so the service starts whether or not the database is up. A
// connection string that cannot be parsed is an error (pgx's messages
// redact the password).
func Open(connString string, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	pc, err := PoolConfig(connString, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	cc := pc.ConnConfig
	s := &Store{
		pool:         pool,
		queryTimeout: cfg.QueryTimeout,
		logger:       logger,
		target:       fmt.Sprintf("host=%s port=%d database=%s user=%s", cc.Host, cc.Port, cc.Database, cc.User),
		queries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "db_query_duration_seconds",
			Help:    "Time of database operations (wait for a connection included), by operation and outcome (ok, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"operation", "outcome"}),
	}
	reg.MustRegister(s.queries, poolCollector{pool}, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "db_schema_ready",
		Help: "1 once the schema migrations are applied and the API can use the database.",
	}, func() float64 {
		if s.ready.Load() {
			return 1
		}
		return 0
	}))
	return s, nil
}

// PoolConfig is the pool's configuration: the connection string's, with
// maxConns connections, a connect timeout unless it sets one, and generic
// plans for prepared statements unless it sets plan_cache_mode.
//
// The setting is a SET on each new connection, not a startup parameter:
// PgBouncer refuses a connection whose startup packet has one it does not
// know ("unsupported startup parameter").
//
// Why generic plans: every statement here reads or writes one table through
// its primary key, so the generic plan is the plan. Left to choose,
// PostgreSQL re-plans the list query at every execution, because its
// generic estimate for "LIMIT $2" never beats the custom plan; that
// planning was half of the server's CPU per list (132 µs against 72,
// measured on PostgreSQL 15 with 60 000 rows).
func PoolConfig(connString string, maxConns int) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("database settings (DATABASE_URL, PG* variables): %w", err)
	}
	pc.MaxConns = int32(maxConns)
	cc := pc.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = defaultConnectTimeout
	}
	if _, set := cc.RuntimeParams["plan_cache_mode"]; !set {
		pc.AfterConnect = useGenericPlans
	}
	return pc, nil
}

func useGenericPlans(ctx context.Context, c *pgx.Conn) error {
	_, err := c.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42704" { // undefined_object
		return nil // PostgreSQL before 12 has no such setting: it plans as it always did
	}
	if err != nil {
		return fmt.Errorf("set plan_cache_mode: %w", err)
	}
	return nil
}

// Target names the database for logs: host, port, database and user.
func (s *Store) Target() string { return s.target }

// Ready reports whether the schema is applied.
func (s *Store) Ready() bool { return s.ready.Load() }

// Start applies the migrations in the background, retrying until they
// succeed, then sweeps expired idempotency keys every hour until Close.
// It never blocks: until the schema is applied, operations fail with
// ErrUnavailable.
func (s *Store) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		s.migrateUntilDone(ctx)
		if ctx.Err() != nil {
			return
		}
		tick := time.NewTicker(sweepInterval)
		defer tick.Stop()
		for {
			if n, err := s.SweepIdempotencyKeys(ctx); err != nil {
				s.logger.Warn("sweeping expired idempotency keys failed", "error", err.Error())
			} else if n > 0 {
				s.logger.Info("expired idempotency keys deleted", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// migrateUntilDone retries the migrations, backing off from 1 s to 10 s,
// until they succeed or ctx ends.
func (s *Store) migrateUntilDone(ctx context.Context) {
	wait := time.Second
	for {
		start := time.Now()
		err := s.Migrate(ctx)
		if err == nil {
			s.logger.Info("database schema ready", "database", s.target, "took_ms", time.Since(start).Milliseconds())
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.logger.Warn("database schema not applied yet; /api answers 503 until it is",
			"database", s.target, "error", err.Error(), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// Close stops the background work and closes the pool. Call it once no
// request is in flight.
func (s *Store) Close() {
	if s.stop != nil {
		s.stop()
		s.done.Wait()
	}
	s.pool.Close()
}

var errNotReady = fmt.Errorf("%w: the schema is not applied yet (the database has not been reached since start)", ErrUnavailable)

// do runs one operation: bounded by the query timeout and by ctx (the
// request's, so a client that leaves cancels its query), timed in the
// histogram, its error classified.
func (s *Store) do(ctx context.Context, op string, f func(ctx context.Context) error) error {
	if !s.ready.Load() {
		return errNotReady
	}
	ctx, cancel := context.WithTimeout(ctx, s.queryTimeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	outcome := "ok"
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrKeyReused) {
		outcome = "error"
	}
	s.queries.WithLabelValues(op, outcome).Observe(time.Since(start).Seconds())
	return classify(err)
}

// classify wraps in ErrUnavailable what is the database's state: anything
// that is not an error the server reported about the statement itself
// (timeouts, refused or broken connections), and the server's own
// "connection", "resources" and "operator intervention" classes (a server
// starting or shutting down answers 57P03 or 57P01).
func classify(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrKeyReused) || errors.Is(err, ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57", "58":
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
