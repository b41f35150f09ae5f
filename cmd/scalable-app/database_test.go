package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"scalable-app/internal/store/pgtest"
)

// TestDatabaseOutage runs the program against a real PostgreSQL that is
// down at start, comes up, goes down (pg_ctl stop -m fast) and comes back:
// the service starts regardless, / and the probes never notice, /api
// answers 503 with Retry-After within 2 s while the database is away, and
// works again each time it is back, with no restart of the service.
func TestDatabaseOutage(t *testing.T) {
	pg, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	dbURL := pg.NewEmptyDatabase(t)
	if err := pg.Stop(); errors.Is(err, pgtest.ErrExternal) {
		t.Skip("TEST_DATABASE_URL's server cannot be stopped by the test")
	} else if err != nil {
		t.Fatal(err)
	}
	// trust authentication ignores the password; it must not be logged.
	const password = "pw-never-logged"
	u, _ := url.Parse(dbURL)
	u.User = url.UserPassword(u.User.Username(), password)

	// No keep-alive: every request on a new connection, so net/http never
	// retries one.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	s := startServer(t, map[string]string{"DATABASE_URL": u.String(), "POD_NAME": "pod-x"})

	post := func() (*http.Response, time.Duration) {
		start := time.Now()
		resp, err := client.Post(s.base+"/api/messages", "application/json", strings.NewReader(`{"text":"hello"}`))
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, time.Since(start)
	}
	unaffected := func(when string) {
		t.Helper()
		for _, path := range []string{"/", "/healthz", "/readyz"} {
			resp, err := client.Get(s.base + path)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s, GET %s: %v %v", when, path, resp, err)
			}
			resp.Body.Close()
		}
	}
	outage := func(when string) {
		t.Helper()
		var slowest time.Duration
		for range 10 {
			resp, took := post()
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
				t.Fatalf("%s: POST got %d, Retry-After %q; want 503, 2", when, resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			slowest = max(slowest, took)
		}
		if slowest > 2*time.Second {
			t.Errorf("%s: a 503 took %s, want under 2 s", when, slowest)
		}
		t.Logf("%s: 10 POSTs answered 503 + Retry-After, slowest in %s", when, slowest.Round(time.Millisecond))
		unaffected(when)
	}
	recovers := func(when string) {
		t.Helper()
		back := time.Now()
		deadline := back.Add(30 * time.Second)
		for {
			resp, _ := post()
			if resp.StatusCode == 201 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: POST still %d 30 s after the database came back", when, resp.StatusCode)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s: first 201 %s after the database came back", when, time.Since(back).Round(time.Millisecond))
		unaffected(when)
	}

	outage("database down at start")
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	recovers("database up after start")

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	outage("database stopped under the running service")
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	recovers("database restarted")

	resp, err := client.Get(s.base + "/api/messages")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := strings.Count(string(body), `"instance":"pod-x"`); n != 2 {
		t.Errorf("%d messages kept across the outage, want 2: %s", n, body)
	}
	metrics := s.metricsBase + "/metrics"
	if _, _, m := get(t, metrics); !strings.Contains(m, "db_schema_ready 1") || !strings.Contains(m, `db_pool_connections{state="idle"}`) {
		t.Errorf("/metrics lacks the database metrics")
	}
	logs := s.stdout.String()
	if strings.Contains(logs, password) {
		t.Errorf("the password is in the logs:\n%s", logs)
	}
	if !strings.Contains(logs, "database schema ready") || !strings.Contains(logs, "user=postgres") {
		t.Errorf("the logs do not say which database became ready:\n%s", logs)
	}
}

// partitionProxy forwards TCP connections to a database until partitioned:
// then it holds every connection, old and new, open and silent, as a lost
// network does, until healed.
type partitionProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	cut      bool
	held     []net.Conn // the service's side of every connection
	ups      []net.Conn // the database's side
}

func newPartitionProxy(t *testing.T, upstream string) *partitionProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partitionProxy{ln: ln, upstream: upstream}
	t.Cleanup(func() { ln.Close(); p.heal() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.held = append(p.held, c)
			cut := p.cut
			p.mu.Unlock()
			if !cut {
				go p.forward(c)
			}
		}
	}()
	return p
}

func (p *partitionProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.ups = append(p.ups, up)
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut {
		c.Close()
	}
}

// partition stops all traffic: the database side of each connection is
// closed, the service's side stays open and hears nothing.
func (p *partitionProxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, up := range p.ups {
		up.Close()
	}
	p.ups = nil
}

// heal closes the connections held during the partition and forwards new
// ones again.
func (p *partitionProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for _, c := range p.held {
		c.Close()
	}
	p.held = nil
}

// TestDatabasePartition: the database host stops answering at all (no
// refusal, no reset: a lost network). No request hangs: /api answers 503
// with Retry-After within 2 s with the default DB_QUERY_TIMEOUT, and the
// service recovers by itself once the network is back.
func TestDatabasePartition(t *testing.T) {
	pg, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	dbURL, err := url.Parse(pg.NewEmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPartitionProxy(t, dbURL.Host)
	dbURL.Host = proxy.ln.Addr().String()
	s := startServer(t, map[string]string{"DATABASE_URL": dbURL.String()})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	post := func() (int, string, time.Duration) {
		start := time.Now()
		resp, err := client.Post(s.base+"/api/messages", "application/json", strings.NewReader(`{"text":"hi"}`))
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start)
	}
	waitFor(t, "the first 201", func() bool { code, _, _ := post(); return code == 201 })

	// The service's pool keeps its connections (they look alive to it);
	// only the answers stop.
	proxy.partition()
	var slowest time.Duration
	for range 5 {
		code, retryAfter, took := post()
		if code != 503 || retryAfter != "2" {
			t.Fatalf("partitioned: %d, Retry-After %q", code, retryAfter)
		}
		slowest = max(slowest, took)
	}
	t.Logf("partitioned: 5 POSTs answered 503 + Retry-After, slowest in %s", slowest.Round(time.Millisecond))
	if slowest > 2*time.Second {
		t.Errorf("a 503 took %s during the partition, want under 2 s", slowest)
	}
	for _, path := range []string{"/", "/healthz", "/readyz"} {
		if code, _, _ := get(t, s.base+path); code != 200 {
			t.Errorf("partitioned: GET %s = %d", path, code)
		}
	}
	proxy.heal()
	healed := time.Now()
	waitFor(t, "a 201 after the partition", func() bool { code, _, _ := post(); return code == 201 })
	t.Logf("first 201 %s after the network came back", time.Since(healed).Round(time.Millisecond))
}

// TestQueryTimeoutBelowWriteTimeout: with a database, an operation must be
// able to end before the answer is due; without one, it does not matter.
func TestQueryTimeoutBelowWriteTimeout(t *testing.T) {
	args := []string{"--port", "0", "--metrics-port", "0", "--host", "127.0.0.1", "--write-timeout", "500ms", "--read-timeout", "1s"}
	env := map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db"}
	err := run(t.Context(), args, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "db-query-timeout 1s (DB_QUERY_TIMEOUT) is too long: it must be below the write timeout 500ms") {
		t.Fatalf("run = %v", err)
	}
}
