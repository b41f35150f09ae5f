package server

import (
	"net/http"
	"strconv"
)

func handleHello() http.Handler {
	body := []byte(Greeting)
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, body, length)
	})
}

// handleHealthz is the liveness probe: the process is up and serving HTTP.
func handleHealthz() http.Handler {
	body := []byte("ok\n")
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, body, length)
	})
}

// handleReadyz is the readiness probe: it fails as soon as shutdown begins,
// so load balancers stop sending new requests while in-flight ones finish.
func handleReadyz(h *Health) http.Handler {
	ready, draining := []byte("ready\n"), []byte("shutting down\n")
	readyLen, drainingLen := strconv.Itoa(len(ready)), strconv.Itoa(len(draining))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Ready() {
			writeText(w, http.StatusServiceUnavailable, draining, drainingLen)
			return
		}
		writeText(w, http.StatusOK, ready, readyLen)
	})
}

// writeText sets the headers directly (no Header().Set canonicalisation) on
// the hot path; HEAD requests get the headers without a body.
func writeText(w http.ResponseWriter, status int, body []byte, length string) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{length}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(status)
	_, _ = w.Write(body) // net/http drops the body of a HEAD response
}
