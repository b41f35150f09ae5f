package server

import (
	"net/http"
	"strconv"
)

func handleHello() http.Handler {
	body := []byte(Greeting)
	length := []string{strconv.Itoa(len(body))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, body, length)
	})
}

// handleHealthz is the liveness probe: the process is up and serving HTTP.
func handleHealthz() http.Handler {
	body := []byte("ok\n")
	length := []string{strconv.Itoa(len(body))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, body, length)
	})
}

// handleReadyz is the readiness probe: it fails as soon as shutdown begins,
// so load balancers stop sending new requests while in-flight ones finish.
func handleReadyz(h *Health) http.Handler {
	ready, draining := []byte("ready\n"), []byte("shutting down\n")
	readyLen, drainingLen := []string{strconv.Itoa(len(ready))}, []string{strconv.Itoa(len(draining))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Ready() {
			writeText(w, http.StatusServiceUnavailable, draining, drainingLen)
			return
		}
		writeText(w, http.StatusOK, ready, readyLen)
	})
}

// Header values shared by all responses; net/http only reads them.
var (
	textPlain = []string{"text/plain; charset=utf-8"}
	noSniff   = []string{"nosniff"}
)

// writeText sets the headers directly (no canonicalisation, no allocation)
// on the hot path; HEAD requests get the headers without a body.
func writeText(w http.ResponseWriter, status int, body []byte, length []string) {
	h := w.Header()
	h["Content-Type"] = textPlain
	h["Content-Length"] = length
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	_, _ = w.Write(body) // net/http drops the body of a HEAD response
}
