package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// addRoutes is the whole API surface. A "GET" pattern also serves HEAD; other
// methods on these paths get 405 with an Allow header from ServeMux, and
// paths not listed get 404.
func addRoutes(mux *http.ServeMux, o Options) {
	mux.Handle("GET /{$}", handleHello())
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(o.Health))
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{o.Logger},
	}))
}
