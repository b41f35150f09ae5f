package server

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// FuzzServeRequest feeds raw HTTP/1.1 requests through the parser and the
// whole handler chain. Whatever the request, the handler must not panic, must
// answer with a status this service uses, must name its instance, and must
// greet on GET /.
func FuzzServeRequest(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: scalable.local\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /readyz?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"BREW /%2e%2e/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET //healthz HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	h := New(Options{
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Registry:  prometheus.NewRegistry(),
		Health:    &Health{},
		Instance:  "fuzz",
		AccessLog: true,
	})
	// No database: /api and /guestbook answer 503 (or reject the request first).
	allowed := map[int]bool{200: true, 301: true, 307: true, 400: true, 403: true, 404: true, 405: true, 413: true, 415: true, 503: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return // net/http answers 400 itself before any handler runs
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("%s %q: unexpected status %d", req.Method, req.URL, rec.Code)
		}
		if rec.Header().Get(InstanceHeader) != "fuzz" {
			t.Fatalf("%s %q: no %s header", req.Method, req.URL, InstanceHeader)
		}
		if req.Method == "GET" && req.URL.Path == "/" && rec.Code == 200 && rec.Body.String() != Greeting {
			t.Fatalf("GET / body = %q", rec.Body.String())
		}
	})
}
