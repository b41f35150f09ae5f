package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// withInstance names the serving instance on every response.
func withInstance(next http.Handler, instance string) http.Handler {
	value := []string{instance}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()[InstanceHeader] = value
		next.ServeHTTP(w, r)
	})
}

// withDrain answers with "Connection: close" once shutdown has begun, and
// net/http then closes the connection after the response: keep-alive
// clients move to instances that stay, each after a complete exchange.
// Closing idle connections at once instead would lose requests already on
// their way on them.
func withDrain(next http.Handler, h *Health) http.Handler {
	closeValue := []string{"close"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Ready() {
			w.Header()["Connection"] = closeValue
		}
		next.ServeHTTP(w, r)
	})
}

// httpMetrics are the RED metrics of the service. Labels are bounded: the
// route is the matched ServeMux pattern, never the raw path, and methods
// outside the standard set count as OTHER.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	labels := []string{"method", "route", "code"}
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by method, route pattern and status code.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by method, route pattern and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, labels),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// withTelemetry records each request in the metrics and, when logger is
// not nil, in the access log, reading the clock once at each end for both.
// It calls the log handler directly: Logger.LogAttrs would also look up the
// caller's program counter, which the line does not show and which costs as
// much as formatting it.
func withTelemetry(next http.Handler, m *httpMetrics, logger *slog.Logger) http.Handler {
	var logHandler slog.Handler
	if logger != nil {
		logHandler = logger.Handler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		end := time.Now()
		elapsed := end.Sub(start)

		route := r.Pattern // set by ServeMux on this same request
		if route == "" {
			route = "unmatched"
		}
		status := rec.status()
		code, method := statusText(status), methodLabel(r.Method)
		m.requests.WithLabelValues(method, route, code).Inc()
		m.duration.WithLabelValues(method, route, code).Observe(elapsed.Seconds())

		if logHandler == nil || !logHandler.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		line := slog.NewRecord(end, slog.LevelInfo, "request", 0)
		line.AddAttrs(
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", rec.bytes),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("remote", r.RemoteAddr),
		)
		_ = logHandler.Handle(r.Context(), line) // a failed log write must not fail the request
	})
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// statusText avoids an allocation for the codes this service answers.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 404:
		return "404"
	case 405:
		return "405"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// recorder captures the status and size of a response.
type recorder struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// slogPrinter adapts a slog.Logger to promhttp's error logger. A scrape
// the client aborted fails while encoding: that is the client's doing, and
// at error level anyone could write error lines at will, so it logs at
// debug (promhttp_metric_handler_errors_total counts it anyway). Failures
// to gather are the service's own and stay errors.
type slogPrinter struct{ logger *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	msg := fmtArgs(v)
	level := slog.LevelError
	if strings.HasPrefix(msg, "error encoding") {
		level = slog.LevelDebug
	}
	p.logger.Log(context.Background(), level, "metrics", "error", msg)
}

func fmtArgs(v []any) string {
	return strings.TrimSuffix(fmt.Sprintln(v...), "\n")
}
