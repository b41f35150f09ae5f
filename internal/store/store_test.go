package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"scalable-app/internal/store"
	"scalable-app/internal/store/pgtest"
)

// pg is the package's PostgreSQL server, started by TestMain.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.Options{Prepare: Migrate}, func(s *pgtest.Server) { pg = s })
}

// Migrate applies the schema to the database at url.
func Migrate(ctx context.Context, url string) error {
	s, err := store.Open(url, store.Config{MaxConns: 2, QueryTimeout: 5 * time.Second}, discard(), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Migrate(ctx)
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// open returns a store on url, closed at the end of the test; migrated
// unless migrate is false.
func open(t *testing.T, url string, migrate bool, timeout time.Duration) *store.Store {
	t.Helper()
	s, err := store.Open(url, store.Config{MaxConns: 4, QueryTimeout: timeout}, discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if migrate {
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func query[T any](t *testing.T, url, sql string, args ...any) T {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v T
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// TestConcurrentMigrationsApplyTheSchemaOnce: replicas starting together
// on an empty database all succeed, and each migration is applied once.
func TestConcurrentMigrationsApplyTheSchemaOnce(t *testing.T) {
	url := pg.NewEmptyDatabase(t)
	const replicas = 8
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	for i := range replicas {
		s := open(t, url, false, 5*time.Second)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Migrate(context.Background())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	if n := query[int64](t, url, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`); n != 2 {
		t.Errorf("%d migrations recorded, want 2 (each applied once)", n)
	}
	if n := query[int64](t, url, `SELECT count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`); n != 2 {
		t.Errorf("%d distinct versions, want 2", n)
	}
	for _, table := range []string{"messages", "idempotency_keys"} {
		if !query[bool](t, url, `SELECT to_regclass($1) IS NOT NULL`, table) {
			t.Errorf("table %s missing", table)
		}
	}
}

func TestNotReadyBeforeMigrations(t *testing.T) {
	s := open(t, pg.NewEmptyDatabase(t), false, time.Second)
	if _, err := s.GetMessage(context.Background(), 1); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("before migrating: %v, want ErrUnavailable", err)
	}
	if s.Ready() {
		t.Fatal("ready before migrating")
	}
}

func TestMessages(t *testing.T) {
	s := open(t, pg.NewDatabase(t), true, time.Second)
	ctx := context.Background()
	var ids []int64
	for i := range 5 {
		m, err := s.CreateMessage(ctx, fmt.Sprintf("message %d", i), "pod-a")
		if err != nil {
			t.Fatal(err)
		}
		if m.Instance != "pod-a" || m.Text != fmt.Sprintf("message %d", i) || time.Since(m.CreatedAt) > time.Minute {
			t.Fatalf("created %+v", m)
		}
		ids = append(ids, m.ID)
	}
	list, more, err := s.ListMessages(ctx, 0, 3)
	if err != nil || !more || len(list) != 3 || list[0].ID != ids[4] || list[2].ID != ids[2] {
		t.Fatalf("first page: %+v more=%v err=%v", list, more, err)
	}
	list, more, err = s.ListMessages(ctx, list[2].ID, 3)
	if err != nil || more || len(list) != 2 || list[0].ID != ids[1] || list[1].ID != ids[0] {
		t.Fatalf("second page: %+v more=%v err=%v", list, more, err)
	}
	if m, err := s.GetMessage(ctx, ids[0]); err != nil || m.Text != "message 0" {
		t.Fatalf("get: %+v %v", m, err)
	}
	if err := s.DeleteMessage(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMessage(ctx, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := s.DeleteMessage(ctx, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestLongTextIsRefusedByTheSchemaToo(t *testing.T) {
	s := open(t, pg.NewDatabase(t), true, time.Second)
	_, err := s.CreateMessage(context.Background(), strings.Repeat("é", 1001), "pod-a")
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("1001 characters: %v, want a check violation", err)
	}
	if _, err := s.CreateMessage(context.Background(), strings.Repeat("é", 1000), "pod-a"); err != nil {
		t.Fatalf("1000 characters: %v", err)
	}
}

func respond(m store.Message) (store.Response, error) {
	return store.Response{Status: 201, Location: fmt.Sprintf("/api/messages/%d", m.ID), Body: []byte(m.Text)}, nil
}

// TestConcurrentSameKeyCreatesOne: requests with one key at once create
// one message; all get its answer, all but one as a replay.
func TestConcurrentSameKeyCreatesOne(t *testing.T) {
	url := pg.NewDatabase(t)
	s := open(t, url, true, 5*time.Second)
	const n = 20
	var wg sync.WaitGroup
	type result struct {
		resp     store.Response
		replayed bool
		err      error
	}
	results := make([]result, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, replayed, err := s.CreateMessageOnce(context.Background(), "key-1", []byte("fp"), "hello", "pod-a", respond)
			results[i] = result{r, replayed, err}
		}()
	}
	close(start)
	wg.Wait()
	var fresh int
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		if !r.replayed {
			fresh++
		}
		if r.resp.Location != results[0].resp.Location || r.resp.Status != 201 || string(r.resp.Body) != "hello" {
			t.Errorf("request %d got %+v, request 0 %+v", i, r.resp, results[0].resp)
		}
	}
	if fresh != 1 {
		t.Errorf("%d requests created a message, want 1", fresh)
	}
	if c := query[int64](t, url, `SELECT count(*) FROM messages`); c != 1 {
		t.Errorf("%d messages, want 1", c)
	}
	if _, _, err := s.CreateMessageOnce(context.Background(), "key-1", []byte("other"), "bye", "pod-a", respond); !errors.Is(err, store.ErrKeyReused) {
		t.Errorf("same key, other request: %v, want ErrKeyReused", err)
	}
}

func TestSweepDeletesOnlyExpiredKeys(t *testing.T) {
	url := pg.NewDatabase(t)
	s := open(t, url, true, time.Second)
	ctx := context.Background()
	for _, k := range []string{"old", "young"} {
		if _, _, err := s.CreateMessageOnce(ctx, k, []byte(k), k, "pod-a", respond); err != nil {
			t.Fatal(err)
		}
	}
	// Just past the TTL, and just within it.
	query[int64](t, url, `WITH u AS (UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 minute' WHERE key = 'old' RETURNING 1) SELECT count(*) FROM u`)
	query[int64](t, url, `WITH u AS (UPDATE idempotency_keys SET created_at = now() - interval '23 hours 59 minutes' WHERE key = 'young' RETURNING 1) SELECT count(*) FROM u`)
	n, err := s.SweepIdempotencyKeys(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want 1", n, err)
	}
	if k := query[string](t, url, `SELECT string_agg(key, ',') FROM idempotency_keys`); k != "young" {
		t.Fatalf("keys left: %q, want young", k)
	}
}

// TestCancelledRequestCancelsItsQuery: a query waiting in the database (on
// a row lock another session holds) stops in the database as soon as its
// context is cancelled, long before the query timeout.
func TestCancelledRequestCancelsItsQuery(t *testing.T) {
	url := pg.NewDatabase(t)
	s := open(t, url, true, 30*time.Second)
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (key, fingerprint) VALUES ('held', 'x')`); err != nil {
		t.Fatal(err)
	}

	reqCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := s.CreateMessageOnce(reqCtx, "held", []byte("x"), "hi", "pod-a", respond)
		done <- err
	}()
	waiting := func() int64 {
		return query[int64](t, url, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
	}
	deadline := time.Now().Add(10 * time.Second)
	for waiting() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the query never waited on the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancelled := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled operation: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the operation did not return after its context was cancelled")
	}
	for waiting() != 0 {
		if time.Since(cancelled) > 5*time.Second {
			t.Fatal("the query still waits in the database after its context was cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("query gone from the database %s after cancellation", time.Since(cancelled).Round(time.Millisecond))
}

// TestUnreachableDatabaseFailsFast: nothing listens at the address; the
// operation fails with ErrUnavailable well within 2 s.
func TestUnreachableDatabaseFailsFast(t *testing.T) {
	s := open(t, "postgres://u:secret-pw@127.0.0.1:1/db?sslmode=disable", false, time.Second)
	start := time.Now()
	err := s.Migrate(context.Background())
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("migrate on an unreachable database: %v after %s", err, time.Since(start))
	}
	if strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("the error shows the password: %v", err)
	}
	if got := s.Target(); got != "host=127.0.0.1 port=1 database=db user=u" {
		t.Errorf("Target() = %q", got)
	}
}

func TestPoolMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := store.Open(pg.NewDatabase(t), store.Config{MaxConns: 3, QueryTimeout: time.Second}, discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMessage(context.Background(), "hi", "pod-a"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"db_pool_connections", "db_pool_open_connections", "db_pool_max_connections",
		"db_pool_acquires_total", "db_pool_acquire_wait_seconds_total", "db_query_duration_seconds", "db_schema_ready"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("%s: %d series, %v", name, n, err)
		}
	}
	want := "# HELP db_pool_max_connections Most connections the pool opens (DB_MAX_CONNS).\n# TYPE db_pool_max_connections gauge\ndb_pool_max_connections 3\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "db_pool_max_connections"); err != nil {
		t.Error(err)
	}
}

// TestListIsNotReplanned: the pool's sessions use generic plans, so
// PostgreSQL never plans the list query anew (PoolConfig says why it would:
// at least its first five executions, and every one on a large table); a
// plan_cache_mode in the connection string wins.
func TestListIsNotReplanned(t *testing.T) {
	db := pg.NewDatabase(t)
	auto, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	q := auto.Query()
	q.Set("plan_cache_mode", "auto")
	auto.RawQuery = q.Encode()
	for _, c := range []struct {
		url        string
		wantCustom bool
	}{{db, false}, {auto.String(), true}} {
		// One connection, so the plan counts read are the list's session's.
		s, err := store.Open(c.url, store.Config{MaxConns: 1, QueryTimeout: 5 * time.Second}, discard(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		const lists = 10
		for range lists {
			if _, _, err := s.ListMessages(context.Background(), 0, 20); err != nil {
				t.Fatal(err)
			}
		}
		generic, custom, err := store.ListPlans(context.Background(), s)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if c.wantCustom != (custom > 0) || generic+custom != lists {
			t.Errorf("%s: %d lists, %d with the generic plan, %d planned anew", c.url, lists, generic, custom)
		}
	}
}
