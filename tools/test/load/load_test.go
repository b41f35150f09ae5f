package load

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// greeter answers as the service does, and counts connections and requests.
type greeter struct {
	conns, reqs atomic.Int64
	mu          sync.Mutex
	hosts       map[string]int
	bodies      []string
}

func newGreeter(t *testing.T, idle time.Duration, handle func(w http.ResponseWriter, r *http.Request, n int64) bool) (*greeter, *httptest.Server) {
	g := &greeter{hosts: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := g.reqs.Add(1)
		body, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.hosts[r.Host]++
		if len(body) > 0 {
			g.bodies = append(g.bodies, r.Method+" "+string(body))
		}
		g.mu.Unlock()
		if handle != nil && handle(w, r, n) {
			return
		}
		w.Header().Set(InstanceHeader, "pod-a")
		_, _ = io.WriteString(w, Greeting)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			g.conns.Add(1)
		}
	}
	srv.Config.IdleTimeout = idle
	srv.Start()
	t.Cleanup(srv.Close)
	return g, srv
}

func TestKeepAliveClientsReuseTheirConnection(t *testing.T) {
	g, srv := newGreeter(t, 0, nil)
	r, err := Generate(context.Background(), Options{Target: Target{URL: srv.URL + "/", Host: "scalable.local"},
		KeepAlive: 3, Duration: 300 * time.Millisecond, WantBody: Greeting})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent < 30 || r.Failed() != 0 || r.OK != r.Sent || r.ByInstance["pod-a"] != r.OK {
		t.Fatalf("want many OK requests and none failed: %s", r)
	}
	if r.Connections != 3 || g.conns.Load() != 3 {
		t.Fatalf("3 keep-alive clients opened %d connections (server saw %d), want 3", r.Connections, g.conns.Load())
	}
	if int64(r.Sent) != g.reqs.Load() {
		t.Fatalf("sent %d, the server saw %d", r.Sent, g.reqs.Load())
	}
	if g.hosts["scalable.local"] != r.Sent {
		t.Fatalf("Host headers seen: %v; want all %d as scalable.local", g.hosts, r.Sent)
	}
	if r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
		t.Fatalf("latency percentiles out of order: %+v", r.Latency)
	}
	if !strings.Contains(r.String(), "3 keep-alive clients (raw HTTP/1.1, no retries)") {
		t.Fatalf("the report does not name its clients: %s", r)
	}
}

func TestFreshClientsOpenAConnectionPerRequestAndPost(t *testing.T) {
	g, srv := newGreeter(t, 0, nil)
	r, err := Generate(context.Background(), Options{Target: Target{URL: srv.URL + "/"}, Fresh: 2,
		Request:  &Request{Method: "POST", Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte("x=1")},
		Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.Failed() != 0 {
		t.Fatalf("want OK requests: %s", r)
	}
	if r.Connections != r.Sent || g.conns.Load() != int64(r.Sent) {
		t.Fatalf("%d fresh requests on %d connections (server saw %d)", r.Sent, r.Connections, g.conns.Load())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.bodies) != r.Sent || g.bodies[0] != "POST x=1" {
		t.Fatalf("server got bodies %q, want %d times POST x=1", g.bodies[:min(3, len(g.bodies))], r.Sent)
	}
	if !strings.Contains(r.Clients(), "2 fresh-connection clients") {
		t.Fatalf("Clients() = %q", r.Clients())
	}
}

// Every third request the server drops the connection in the middle of its
// answer: each must be counted as failed, none hidden by a retry, and the
// keep-alive client must go on on a new connection.
func TestAConnectionDroppedMidAnswerIsCounted(t *testing.T) {
	var dropped atomic.Int64
	g, srv := newGreeter(t, 0, func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n%3 != 0 {
			return false
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHello")
		_ = buf.Flush()
		dropped.Add(1) // before the close: the client may count it the moment it sees the close
		conn.Close()
		return true
	})
	l, err := Start(context.Background(), Options{Target: Target{URL: srv.URL + "/"}, KeepAlive: 1})
	if err != nil {
		t.Fatal(err)
	}
	for dropped.Load() < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	r := l.Stop()
	want := "read answer: connection closed mid-answer"
	if r.Errors[want] != int(dropped.Load()) || r.NoAnswer() != r.Errors[want] {
		t.Fatalf("server dropped %d answers; errors counted %v, want %d of %q", dropped.Load(), r.Errors, dropped.Load(), want)
	}
	if int64(r.Sent) != g.reqs.Load() || r.Failed() != r.NoAnswer() || r.Sent != r.OK+r.NoAnswer() {
		t.Fatalf("server saw %d requests; report: %s", g.reqs.Load(), r)
	}
	// One connection to start, and one after each drop but a last one.
	if d := int(dropped.Load()); r.Connections != d && r.Connections != d+1 {
		t.Fatalf("%d connections after %d drops, want a new one after each drop only", r.Connections, d)
	}
}

// A server that ends keep-alive with Connection: close, or closes an idle
// connection between requests, loses nothing: the client reconnects.
func TestCleanClosesBetweenRequestsAreNotFailures(t *testing.T) {
	_, srv := newGreeter(t, 20*time.Millisecond, func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n%2 == 0 {
			w.Header().Set("Connection", "close")
		}
		return false
	})
	r, err := Generate(context.Background(), Options{Target: Target{URL: srv.URL + "/"}, KeepAlive: 2, Rate: 40,
		Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent < 10 || r.Failed() != 0 {
		t.Fatalf("want no failures across clean closes: %s", r)
	}
	if r.Connections < r.Sent/2 {
		t.Fatalf("%d connections for %d requests: Connection: close was not honoured", r.Connections, r.Sent)
	}
}

func TestFixedRateAndStatusCounts(t *testing.T) {
	_, srv := newGreeter(t, 0, func(w http.ResponseWriter, r *http.Request, n int64) bool {
		if n%4 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	r, err := Generate(context.Background(), Options{Target: Target{URL: srv.URL + "/"}, KeepAlive: 2, Fresh: 2,
		Rate: 200, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent < 170 || r.Sent > 210 {
		t.Fatalf("asked 200 req/s for 1 s, sent %d", r.Sent)
	}
	if r.Status[503] != r.Sent/4 || r.Status[200] != r.Sent-r.Sent/4 || r.Failed() != r.Status[503] {
		t.Fatalf("statuses %v for %d requests; failed %d", r.Status, r.Sent, r.Failed())
	}
}

func TestRefusedConnectionsAreCountedAsNoAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := Generate(context.Background(), Options{Target: Target{URL: "http://" + addr + "/"}, Fresh: 1, Rate: 50,
		Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.Errors["connect: connection refused"] != r.Sent || r.OK != 0 {
		t.Fatalf("want every request counted as refused: %s", r)
	}
}

func TestSendCarriesMethodHeadersAndBodyAndReturnsHeaders(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.Store(r.Method + " " + r.URL.RequestURI() + " " + r.Header.Get("Idempotency-Key") + " " + r.Header.Get("Content-Type") + " " + string(body))
		w.Header().Set("Location", "/api/messages/7")
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(Target{URL: srv.URL + "/"}, KeepAlive)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 { // the second on the same connection
		rep, err := c.Send(context.Background(), Request{Method: "POST", Path: "/api/messages?x=1",
			Header: http.Header{"Idempotency-Key": {"k1"}, "Content-Type": {"application/json"}}, Body: []byte(`{"text":"hi"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Status != http.StatusCreated || rep.Header.Get("Location") != "/api/messages/7" {
			t.Fatalf("want 201 with its Location, got %d %v", rep.Status, rep.Header)
		}
		if want := `POST /api/messages?x=1 k1 application/json {"text":"hi"}`; got.Load() != want {
			t.Fatalf("server saw %q, want %q", got.Load(), want)
		}
	}
	if c.Connections() != 1 {
		t.Fatalf("want one connection for both requests, got %d", c.Connections())
	}
}

func TestWantStatusDecidesWhatCountsAsOK(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			w.WriteHeader(http.StatusCreated)
		}
	}))
	t.Cleanup(srv.Close)
	post := &Request{Method: "POST", Body: []byte(`{}`)}
	for _, c := range []struct {
		want   int
		req    *Request
		failed bool
	}{{http.StatusCreated, post, false}, {0, post, true}, {0, nil, false}, {http.StatusCreated, nil, true}} {
		r, err := Generate(context.Background(), Options{Target: Target{URL: srv.URL + "/"}, KeepAlive: 1,
			Request: c.req, WantStatus: c.want, Duration: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if r.Sent == 0 || (r.Failed() == r.Sent) != c.failed || (r.Failed() == 0) == c.failed {
			t.Errorf("WantStatus %d, POST %v: want every request failed=%v, got %s", c.want, c.req != nil, c.failed, r)
		}
	}
}

// unanswered listens on loopback with an accept queue of one, filled at once:
// the kernel then drops every SYN, so a dial to it waits for its deadline.
func unanswered(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = filler.Close() })
	return addr
}

func cutShort(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Cut
}

// A dial that the caller's deadline ends reports the caller's cut, not a
// server's timeout, even in the moment before ctx.Err() says so (seen in the
// pipeline's smoke test, whose last answer read "connect: i/o timeout").
func TestARequestCutByTheCallersDeadlineIsCutShort(t *testing.T) {
	target := Target{URL: "http://" + unanswered(t) + "/"}
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := Get(ctx, target)
		cancel()
		if !cutShort(err) || errorKind(err) != "connect: aborted (the run's context ended)" {
			t.Fatalf("attempt %d: %v (%s), want a request cut short by the caller", i+1, err, errorKind(err))
		}
	}
	// The client's own timeout is not the caller's cut.
	c, err := newClient(target, Fresh, nil, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background()); err == nil || cutShort(err) || errorKind(err) != "connect: timeout" {
		t.Fatalf("%v (%s), want the client's own connect timeout", err, errorKind(err))
	}
}
