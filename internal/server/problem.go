package server

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"scalable-app/internal/store"
)

// requestError is what a handler found wrong with a request.
type requestError struct {
	status int
	field  string // the JSON field, query parameter or path value at fault
	detail string
	// authenticate is the WWW-Authenticate challenge of a 401.
	authenticate string
}

func (e *requestError) Error() string { return e.detail }

func badRequest(field, detail string) error {
	return &requestError{status: http.StatusBadRequest, field: field, detail: detail}
}

var errNoDatabase = errors.New("no database configured")

// problem is an RFC 9457 problem details object.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Field  string `json:"field,omitempty"` // an extension member: which input was wrong

	retryAfter   bool
	authenticate string
}

// retryAfterSeconds is the Retry-After of every 503 of the API: long
// enough for a pool to reconnect, short enough to notice the recovery.
const retryAfterSeconds = "2"

// problemOf maps every error of the API and the guestbook to its answer:
// the one place where errors become statuses.
func problemOf(err error, logger *slog.Logger) problem {
	var re *requestError
	switch {
	case errors.As(err, &re):
		return problem{Status: re.status, Field: re.field, Detail: re.detail, authenticate: re.authenticate}
	case errors.Is(err, errNoDatabase):
		return problem{Status: http.StatusServiceUnavailable, retryAfter: true,
			Detail: "no database configured: set DATABASE_URL (postgres://user:password@host:5432/db) or the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE"}
	case errors.Is(err, store.ErrUnavailable):
		logger.Warn("answered 503", "error", err.Error())
		return problem{Status: http.StatusServiceUnavailable, retryAfter: true,
			Detail: "the database is unavailable; retry later"}
	case errors.Is(err, store.ErrNotFound):
		return problem{Status: http.StatusNotFound, Detail: "no message has this id"}
	case errors.Is(err, store.ErrKeyReused):
		return problem{Status: http.StatusUnprocessableEntity, Field: "Idempotency-Key",
			Detail: "this Idempotency-Key was used for a different request; use a new key for a new request"}
	}
	logger.Error("request failed", "error", err.Error())
	return problem{Status: http.StatusInternalServerError, Detail: "internal error"}
}

var problemJSON = []string{"application/problem+json"}

// writeProblem answers err as application/problem+json.
func writeProblem(w http.ResponseWriter, logger *slog.Logger, err error) {
	p := problemOf(err, logger)
	p.Type, p.Title = "about:blank", http.StatusText(p.Status) // RFC 9457 4.2.1: the title of about:blank is the status phrase
	setProblemHeaders(w.Header(), p)
	h := w.Header()
	h["Content-Type"] = problemJSON
	body, _ := marshal(p)
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

func setProblemHeaders(h http.Header, p problem) {
	if p.retryAfter {
		h.Set("Retry-After", retryAfterSeconds)
	}
	if p.authenticate != "" {
		h.Set("WWW-Authenticate", p.authenticate)
	}
	h["X-Content-Type-Options"] = noSniff
}
