package server

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTestHandler(t *testing.T) (http.Handler, *Health, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	health := &Health{}
	h := New(Options{
		Logger:    slog.New(slog.NewJSONHandler(&logs, nil)),
		Registry:  reg,
		Health:    health,
		Instance:  "pod-a",
		AccessLog: true,
	})
	return h, health, reg, &logs
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestRoutes(t *testing.T) {
	h, _, _, _ := newTestHandler(t)
	tests := []struct {
		method, target string
		status         int
		body           string
		allow          string
	}{
		{"GET", "/", 200, Greeting, ""},
		{"HEAD", "/", 200, "", ""}, // no body on the wire: TestHeadSendsNoBody in cmd/scalable-app
		{"POST", "/", 405, "", "GET, HEAD"},
		{"DELETE", "/", 405, "", "GET, HEAD"},
		{"GET", "/nope", 404, "", ""},
		{"GET", "/index.html", 404, "", ""},
		{"GET", "/healthz", 200, "ok\n", ""},
		{"GET", "/readyz", 200, "ready\n", ""},
		{"PUT", "/healthz", 405, "", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := serve(h, tt.method, tt.target)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			if tt.body != "" && rec.Body.String() != tt.body {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.body)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if got := rec.Header().Get(InstanceHeader); got != "pod-a" {
				t.Errorf("%s = %q, want pod-a", InstanceHeader, got)
			}
		})
	}
}

func TestHelloHeaders(t *testing.T) {
	h, _, _, _ := newTestHandler(t)
	for _, method := range []string{"GET", "HEAD"} {
		rec := serve(h, method, "/")
		if got := rec.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
			t.Errorf("%s: Content-Type = %q", method, got)
		}
		if got := rec.Header().Get("Content-Length"); got != "21" {
			t.Errorf("%s: Content-Length = %q, want 21", method, got)
		}
	}
}

func TestReadyzFailsOnceShutdownBegins(t *testing.T) {
	h, health, _, _ := newTestHandler(t)
	if rec := serve(h, "GET", "/readyz"); rec.Code != 200 {
		t.Fatalf("before shutdown: /readyz = %d, want 200", rec.Code)
	}
	health.BeginShutdown()
	if rec := serve(h, "GET", "/readyz"); rec.Code != 503 {
		t.Fatalf("after shutdown began: /readyz = %d, want 503", rec.Code)
	}
	if rec := serve(h, "GET", "/healthz"); rec.Code != 200 {
		t.Fatalf("after shutdown began: /healthz = %d, want 200 (liveness must not fail)", rec.Code)
	}
}

func TestMetricsUseRoutePatternNotPath(t *testing.T) {
	h, _, reg, _ := newTestHandler(t)
	serve(h, "GET", "/")
	serve(h, "GET", "/")
	serve(h, "GET", "/random/path/1")
	serve(h, "GET", "/random/path/2")
	serve(h, "BREW", "/")
	serve(h, "POST", "/")

	want := `
# HELP http_requests_total HTTP requests served, by method, route pattern and status code.
# TYPE http_requests_total counter
http_requests_total{code="200",method="GET",route="GET /{$}"} 2
http_requests_total{code="404",method="GET",route="unmatched"} 2
http_requests_total{code="405",method="OTHER",route="unmatched"} 1
http_requests_total{code="405",method="POST",route="unmatched"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "http_request_duration_seconds"); n != 4 {
		t.Fatalf("latency histogram has %d series, want 4 (one per method/route/code)", n)
	}

	if rec := serve(h, "GET", "/metrics"); rec.Code != 404 {
		t.Fatalf("/metrics on the service port = %d, want 404 (it has a port of its own)", rec.Code)
	}
	rec := serve(Metrics(Options{Registry: reg, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}), "GET", "/metrics")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "http_request_duration_seconds_bucket") {
		t.Fatalf("/metrics = %d, body lacks the latency histogram", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "/random/path") {
		t.Fatal("a raw request path leaked into the metric labels")
	}
}

func TestAccessLogLine(t *testing.T) {
	h, _, _, logs := newTestHandler(t)
	req := httptest.NewRequest("GET", "/nope", nil)
	req.RemoteAddr = "192.0.2.7:4242"
	h.ServeHTTP(httptest.NewRecorder(), req)
	line := logs.String()
	for _, want := range []string{`"method":"GET"`, `"path":"/nope"`, `"status":404`, `"bytes":19`, `"duration_ms":`, `"remote":"192.0.2.7:4242"`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log %s lacks %s", line, want)
		}
	}
}

func TestAccessLogCanBeTurnedOff(t *testing.T) {
	var logs bytes.Buffer
	h := New(Options{
		Logger:   slog.New(slog.NewJSONHandler(&logs, nil)),
		Registry: prometheus.NewRegistry(),
		Health:   &Health{},
	})
	serve(h, "GET", "/")
	if logs.Len() != 0 {
		t.Fatalf("access log off, but got %q", logs.String())
	}
}

func BenchmarkHello(b *testing.B) {
	h := New(Options{
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Registry:  prometheus.NewRegistry(),
		Health:    &Health{},
		Instance:  "bench",
		AccessLog: true,
	})
	req := httptest.NewRequest("GET", "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// brokenWriter is a client that went away: every write fails.
type brokenWriter struct{ h http.Header }

func (b brokenWriter) Header() http.Header       { return b.h }
func (b brokenWriter) WriteHeader(int)           {}
func (b brokenWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// TestAbortedScrapeLogsNoError: a client aborting /metrics must not be able
// to write ERROR lines at will; the failure is counted instead.
func TestAbortedScrapeLogsNoError(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := Metrics(Options{Logger: logger, Registry: reg})
	for i := 0; i < 3; i++ {
		h.ServeHTTP(brokenWriter{http.Header{}}, httptest.NewRequest("GET", "/metrics", nil))
	}
	if logs.Len() != 0 {
		t.Fatalf("aborted scrapes logged: %s", logs.String())
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `promhttp_metric_handler_errors_total{cause="encoding"} 3`) {
		t.Fatalf("aborted scrapes not counted:\n%s", rec.Body.String())
	}
}
