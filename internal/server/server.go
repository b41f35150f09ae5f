// Package server holds scalable-app's HTTP handlers, middleware and routes.
package server

import (
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"scalable-app/internal/store"
)

// Greeting is the body of GET /, the text the seed's Flask app returned.
const Greeting = "Hello from Kubernetes"

// InstanceHeader names the instance that served a response, so a client of a
// replicated Service can see the replicas take turns.
const InstanceHeader = "X-Instance"

// Health is the readiness state shared by the handlers and the shutdown
// sequence. The zero value is ready.
type Health struct {
	shuttingDown atomic.Bool
}

// BeginShutdown makes /readyz fail from now on.
func (h *Health) BeginShutdown() { h.shuttingDown.Store(true) }

// Ready reports whether the instance should receive traffic.
func (h *Health) Ready() bool { return !h.shuttingDown.Load() }

// Options are the dependencies of the handler.
type Options struct {
	Logger    *slog.Logger
	Registry  *prometheus.Registry // metrics are registered here and served by Metrics
	Health    *Health
	Instance  string // value of the InstanceHeader, and the instance of the messages written here
	AccessLog bool
	// Store is the database of /api and /guestbook; nil when none is
	// configured (they answer 503, the rest is unaffected).
	Store *store.Store
	// ModeratorToken lets DELETE /api/messages/{id} through; empty: off.
	ModeratorToken string
}

// New returns the service's root handler: routes wrapped in middleware.
func New(o Options) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, o)

	// Telemetry wraps the mux so it sees the matched route pattern (set on
	// the request by ServeMux) and the final status, including the mux's own
	// 404 and 405 answers.
	var accessLog *slog.Logger
	if o.AccessLog {
		accessLog = o.Logger
	}
	h := withTelemetry(mux, newHTTPMetrics(o.Registry), accessLog)
	return withInstance(withDrain(h, o.Health), o.Instance)
}

// Metrics returns the handler of the metrics port: /metrics only.
func Metrics(o Options) http.Handler {
	mux := http.NewServeMux()
	addMetricsRoutes(mux, o)
	return mux
}
