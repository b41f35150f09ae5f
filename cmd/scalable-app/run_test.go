package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"scalable-app/internal/config"
	"scalable-app/internal/server"
)

// syncBuffer collects the output of a running server.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type runningServer struct {
	base        string // http://127.0.0.1:port
	addr        string
	metricsBase string // http://127.0.0.1:metrics-port
	stdout      *syncBuffer
	stop        context.CancelFunc
	done        chan error
}

// startServer runs the program in-process on a free port and waits until
// /healthz answers.
func startServer(t *testing.T, env map[string]string, args ...string) *runningServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &runningServer{stdout: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	getenv := func(k string) string { return env[k] }
	args = append([]string{"--port", "0", "--host", "127.0.0.1", "--metrics-port", "0"}, args...)
	go func() { s.done <- run(ctx, args, getenv, s.stdout, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			t.Error("server did not stop within 15s of cancellation")
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for s.addr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line in the log: %q", s.stdout.String())
		}
		select {
		case err := <-s.done:
			s.done <- err // let the cleanup's wait return
			t.Fatalf("run returned before serving: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		s.addr = startupAddr(s.stdout.String())
	}
	s.base = "http://" + s.addr
	s.metricsBase = "http://" + startupField(s.stdout.String(), "metrics_addr")
	waitFor(t, "healthz", func() bool {
		resp, err := http.Get(s.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

// startupAddr finds the listen address in the start-up log line, written
// as JSON or as text.
func startupAddr(logs string) string { return startupField(logs, "addr") }

// startupField finds a string field of the start-up log line.
func startupField(logs, key string) string {
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "scalable-app started" {
			switch v := rec[key].(type) {
			case string:
				return v
			case nil:
				return ""
			default:
				return fmt.Sprint(v)
			}
		}
		if strings.Contains(line, `msg="scalable-app started"`) {
			for _, field := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(field, key+"="); ok {
					return v
				}
			}
		}
	}
	return ""
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func TestEveryEndpoint(t *testing.T) {
	s := startServer(t, map[string]string{"POD_NAME": "scalable-app-7d9f-abcde"})

	status, header, body := get(t, s.base+"/")
	if status != 200 || body != server.Greeting {
		t.Errorf("GET / = %d %q, want 200 %q", status, body, server.Greeting)
	}
	if got := header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("GET / Content-Type = %q", got)
	}
	if got := header.Get(server.InstanceHeader); got != "scalable-app-7d9f-abcde" {
		t.Errorf("%s = %q, want the pod name from POD_NAME", server.InstanceHeader, got)
	}

	resp, err := http.Head(s.base + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("HEAD / = %v, %v; want 200", resp, err)
	}

	resp, err = http.Post(s.base+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST / = %d Allow %q, want 405 Allow \"GET, HEAD\"", resp.StatusCode, resp.Header.Get("Allow"))
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/nope": 404} {
		if status, _, _ := get(t, s.base+path); status != want {
			t.Errorf("GET %s = %d, want %d", path, status, want)
		}
	}

	if status, _, _ := get(t, s.base+"/metrics"); status != 404 {
		t.Errorf("GET /metrics on the service port = %d, want 404 (it has a port of its own)", status)
	}
	status, _, body = get(t, s.metricsBase+"/metrics")
	for _, want := range []string{
		`http_requests_total{code="200",method="GET",route="GET /{$}"}`,
		`http_requests_total{code="404",method="GET",route="unmatched"}`,
		"http_request_duration_seconds_bucket",
		"go_goroutines",
		"process_resident_memory_bytes",
		"log_lines_dropped_total 0",
		`http_connections{state="idle"}`,
		`http_connections_closed_total{reason="cap"} 0`,
	} {
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (status %d) lacks %s", status, want)
		}
	}

	waitFor(t, "access log line for /nope", func() bool {
		return strings.Contains(s.stdout.String(), `"path":"/nope","status":404`)
	})
}

func TestTextLogs(t *testing.T) {
	s := startServer(t, map[string]string{"LOG_FORMAT": "text"}, "--log-format", "json")
	if !strings.HasPrefix(s.stdout.String(), "{") {
		t.Fatalf("the --log-format flag must beat LOG_FORMAT; got %q", s.stdout.String())
	}
	s = startServer(t, map[string]string{"LOG_FORMAT": "text"})
	get(t, s.base+"/")
	waitFor(t, "a text access line", func() bool {
		return strings.Contains(s.stdout.String(), "msg=request method=GET path=/ status=200")
	})
}

func TestAccessLogOff(t *testing.T) {
	s := startServer(t, map[string]string{"ACCESS_LOG": "false"})
	get(t, s.base+"/")
	s.stop()
	<-s.done
	s.done <- nil // let the cleanup's wait return
	if strings.Contains(s.stdout.String(), `"msg":"request"`) {
		t.Fatalf("ACCESS_LOG=false, but requests were logged: %s", s.stdout.String())
	}
}

// TestGracefulShutdown: after the shutdown signal, /readyz fails at once
// while the drain delay runs, a request already in flight at the signal
// completes, and run returns nil.
func TestGracefulShutdown(t *testing.T) {
	s := startServer(t, nil, "--drain-delay", "2s")

	// A request in flight: its headers started but not finished.
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: test\r\n"); err != nil {
		t.Fatal(err)
	}

	s.stop() // what SIGTERM does in main
	waitFor(t, "/readyz to answer 503", func() bool {
		resp, err := http.Get(s.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	if status, _, _ := get(t, s.base+"/healthz"); status != 200 {
		t.Errorf("/healthz during drain = %d, want 200", status)
	}

	if _, err := io.WriteString(conn, "\r\n"); err != nil {
		t.Fatalf("finish the in-flight request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request got no response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != server.Greeting {
		t.Fatalf("in-flight request = %d %q, want 200 %q", resp.StatusCode, body, server.Greeting)
	}
	if !resp.Close {
		t.Error("a response during the drain must carry Connection: close, so clients reconnect elsewhere")
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run returned %v, want nil", err)
		}
		s.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
	if !strings.Contains(s.stdout.String(), "shutdown complete") {
		t.Errorf("no shutdown line in the log: %s", s.stdout.String())
	}
}

// TestShutdownTimeout: a shutdown timeout shorter than a request may take
// is refused at start-up; with one longer, a request that never finishes
// its headers is cut off by the read-header timeout, and shutdown ends in
// time with no error.
func TestShutdownTimeout(t *testing.T) {
	err := run(context.Background(), []string{"--shutdown-timeout", "200ms"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--shutdown-timeout 200ms is too short: a request may take up to 15s") {
		t.Fatalf("run = %v, want the shutdown timeout refused, naming the 15 s a request may take", err)
	}

	s := startServer(t, nil, "--shutdown-timeout", "400ms", "--read-header-timeout", "100ms",
		"--read-timeout", "200ms", "--write-timeout", "200ms")
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: test\r\n") // never finished
	start := time.Now()
	s.stop()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run = %v, want nil", err)
		}
		if took := time.Since(start); took > 400*time.Millisecond {
			t.Fatalf("shutdown took %s, more than the 400ms shutdown timeout", took)
		}
		s.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown timeout not enforced")
	}
}

func TestBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := fmt.Sprint(busy.Addr().(*net.TCPAddr).Port)

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"port not a number", []string{"--port", "abc"}, nil, `invalid value "abc" for --port`},
		{"port out of range", []string{"--port", "70000"}, nil, `invalid value "70000" for --port`},
		{"PORT not a number", nil, map[string]string{"PORT": "abc"}, `invalid value "abc" for PORT`},
		{"port in use", []string{"--host", "127.0.0.1", "--port", busyPort}, nil, "address already in use"},
		{"unknown flag", []string{"--colour"}, nil, "unknown flag --colour"},
		{"stray argument", []string{"serve"}, nil, `unexpected argument "serve"`},
		{"bad duration", []string{"--drain-delay", "soon"}, nil, `invalid value "soon" for --drain-delay`},
		{"bad log format", nil, map[string]string{"LOG_FORMAT": "xml"}, `invalid log format "xml"`},
		{"bad log level", []string{"--log-level", "loud"}, nil, `invalid log level "loud"`},
		{"bad boolean", nil, map[string]string{"ACCESS_LOG": "maybe"}, `invalid value "maybe" for ACCESS_LOG`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var stdout bytes.Buffer
			err := run(ctx, tt.args, func(k string) string { return tt.env[k] }, &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

func TestFlagBeatsEnvironment(t *testing.T) {
	s := startServer(t, map[string]string{"INSTANCE": "from-env", "POD_NAME": "pod"}, "--instance", "from-flag")
	if _, h, _ := get(t, s.base+"/"); h.Get(server.InstanceHeader) != "from-flag" {
		t.Fatalf("instance = %q, want from-flag", h.Get(server.InstanceHeader))
	}
	s = startServer(t, map[string]string{"INSTANCE": "from-env", "POD_NAME": "pod"})
	if _, h, _ := get(t, s.base+"/"); h.Get(server.InstanceHeader) != "from-env" {
		t.Fatalf("instance = %q, want from-env", h.Get(server.InstanceHeader))
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, io.Discard)
	if !errors.Is(err, config.ErrHelp) {
		t.Fatalf("--help: run = %v, want ErrHelp", err)
	}
	for _, want := range []string{"--port", "env PORT, default 5000", "--drain-delay", "--shutdown-timeout",
		"--log-format", "--read-header-timeout", "--max-header-bytes", "--version", "--help"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}

	out.Reset()
	if err := run(context.Background(), []string{"--version"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "scalable-app "+version+" (revision ") {
		t.Fatalf("--version printed %q", out.String())
	}
}
