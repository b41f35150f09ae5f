package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// addRoutes is the whole API surface of the service port. A "GET" pattern
// also serves HEAD; other methods on these paths get 405 with an Allow header
// from ServeMux, and paths not listed get 404.
func addRoutes(mux *http.ServeMux, o Options) {
	mux.Handle("GET /{$}", handleHello())
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(o.Health))

	// The guestbook: JSON API (errors as application/problem+json) and its
	// HTML page. Only these touch the database.
	a := newAPI(o)
	mux.Handle("POST /api/messages", a.handle(a.createMessage))
	mux.Handle("GET /api/messages", a.handle(a.listMessages))
	mux.Handle("GET /api/messages/{id}", a.handle(a.getMessage))
	mux.Handle("DELETE /api/messages/{id}", a.handle(a.deleteMessage))
	mux.HandleFunc("GET /guestbook", a.showGuestbook)
	// The form posts here; cross-site posts (another site's form aimed at
	// this one) are refused with 403, by Sec-Fetch-Site or Origin.
	mux.Handle("POST /guestbook", http.NewCrossOriginProtection().Handler(http.HandlerFunc(a.signGuestbook)))
}

// addMetricsRoutes is the surface of the metrics port, which no Service
// exposes: /metrics costs about 50 times a GET /.
func addMetricsRoutes(mux *http.ServeMux, o Options) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{o.Logger},
		// Counts its own errors in promhttp_metric_handler_errors_total.
		Registry: o.Registry,
		// A scraper or two; more at once get 503 instead of stacking up.
		MaxRequestsInFlight: 4,
	}))
}
