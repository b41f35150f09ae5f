package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"scalable-app/internal/store"
)

// The rules of a message and of the API's requests.
const (
	maxTextChars   = 1000
	maxBodyBytes   = 16 << 10
	defaultLimit   = 20
	maxLimit       = 100
	maxKeyLength   = 255
	replayedHeader = "Idempotent-Replayed"
)

// api holds what the /api handlers share. A nil store means no database is
// configured.
type api struct {
	store    *store.Store
	logger   *slog.Logger
	instance string
	// The SHA-256 of the moderator token, so that comparing takes the same
	// time whatever the length of the token presented; nil: deletion off.
	token []byte
}

func newAPI(o Options) *api {
	a := &api{store: o.Store, logger: o.Logger, instance: o.Instance}
	if o.ModeratorToken != "" {
		sum := sha256.Sum256([]byte(o.ModeratorToken))
		a.token = sum[:]
	}
	return a
}

// handle turns a handler that returns an error into an http.Handler; the
// error is answered by writeProblem.
func (a *api) handle(f func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			writeProblem(w, a.logger, err)
		}
	})
}

type messageJSON struct {
	ID        int64  `json:"id"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"`
	Instance  string `json:"instance"`
}

func toJSON(m store.Message) messageJSON {
	return messageJSON{ID: m.ID, Text: m.Text, CreatedAt: m.CreatedAt.UTC().Format(time.RFC3339Nano), Instance: m.Instance}
}

func messagePath(id int64) string { return "/api/messages/" + strconv.FormatInt(id, 10) }

var applicationJSON = []string{"application/json"}

// marshal encodes v without encoding/json's escaping of <, > and & (the
// answers are application/json with nosniff, never read as HTML), so a
// next link reads as sent.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = applicationJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// createMessage is POST /api/messages. With an Idempotency-Key, the key,
// the message and the answer are stored in one transaction.
func (a *api) createMessage(w http.ResponseWriter, r *http.Request) error {
	if a.store == nil {
		return errNoDatabase
	}
	sent, err := readMessage(w, r)
	if err != nil {
		return err
	}
	text, err := validText(sent)
	if err != nil {
		return err
	}
	key, hasKey, err := idempotencyKey(r.Header)
	if err != nil {
		return err
	}
	respond := func(m store.Message) (store.Response, error) {
		body, err := marshal(toJSON(m))
		return store.Response{Status: http.StatusCreated, Location: messagePath(m.ID), Body: body}, err
	}
	var resp store.Response
	var replayed bool
	if hasKey {
		// The request is the text as sent: a retry sends the same bytes.
		fingerprint := sha256.Sum256([]byte("POST /api/messages\n" + sent))
		resp, replayed, err = a.store.CreateMessageOnce(r.Context(), key, fingerprint[:], text, a.instance, respond)
	} else {
		var m store.Message
		if m, err = a.store.CreateMessage(r.Context(), text, a.instance); err == nil {
			resp, err = respond(m)
		}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", resp.Location)
	if replayed {
		w.Header().Set(replayedHeader, "true")
	}
	writeJSON(w, resp.Status, resp.Body)
	return nil
}

// readMessage reads the text field of a JSON body {"text": "..."}.
func readMessage(w http.ResponseWriter, r *http.Request) (string, error) {
	media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (media != "application/json" && !strings.HasSuffix(media, "+json")) {
		return "", &requestError{status: http.StatusUnsupportedMediaType, field: "Content-Type",
			detail: `the body must be JSON, sent with Content-Type: application/json, such as {"text": "hello"}`}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return "", &requestError{status: http.StatusRequestEntityTooLarge,
				detail: fmt.Sprintf("the body is over %d bytes", maxBodyBytes)}
		}
		return "", badRequest("body", "the body could not be read: "+err.Error())
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(body) {
		return "", badRequest("text", "the body is not valid UTF-8")
	}
	// A map rather than a struct: field names match exactly (encoding/json
	// matches struct fields in any case), and an unknown one can be named.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return "", badRequest("body", `the body must be a JSON object, such as {"text": "hello"}`)
		}
		return "", badRequest("body", "the body is not valid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	for name := range fields {
		if name != "text" {
			return "", badRequest(name, fmt.Sprintf("unknown field %q: the only field is text", name))
		}
	}
	raw, ok := fields["text"]
	if !ok {
		return "", badRequest("text", "text is required")
	}
	var text string
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, &text) != nil {
		return "", badRequest("text", "text must be a string")
	}
	return text, nil
}

// validText applies the rules of a message to text as sent and returns
// what is stored: 1 to 1000 characters (code points) once trimmed.
func validText(sent string) (string, error) {
	text := strings.TrimSpace(sent)
	switch n := utf8.RuneCountInString(text); {
	case n == 0:
		return "", badRequest("text", "text must not be empty (spaces alone are trimmed)")
	case n > maxTextChars:
		return "", badRequest("text", fmt.Sprintf("text is %d characters long, at most %d are allowed", n, maxTextChars))
	case !utf8.ValidString(text):
		return "", badRequest("text", "text is not valid UTF-8")
	case strings.ContainsRune(text, 0):
		// PostgreSQL's text cannot hold it.
		return "", badRequest("text", "text must not contain the NUL character")
	}
	return text, nil
}

// idempotencyKey reads the Idempotency-Key header: a token as Stripe sends
// it, or a quoted string as the IETF draft (a structured-field string) does.
func idempotencyKey(h http.Header) (string, bool, error) {
	values := h.Values("Idempotency-Key")
	if len(values) == 0 {
		return "", false, nil
	}
	key := values[0]
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		key = key[1 : len(key)-1]
	}
	bad := len(values) > 1 || key == "" || len(key) > maxKeyLength
	for i := 0; i < len(key) && !bad; i++ {
		bad = key[i] < 0x20 || key[i] > 0x7e
	}
	if bad {
		return "", false, badRequest("Idempotency-Key",
			fmt.Sprintf("Idempotency-Key must be one value of 1 to %d printable ASCII characters, such as a UUID", maxKeyLength))
	}
	return key, true, nil
}

// listMessages is GET /api/messages?limit=N&before=ID.
func (a *api) listMessages(w http.ResponseWriter, r *http.Request) error {
	if a.store == nil {
		return errNoDatabase
	}
	q := r.URL.Query()
	limit := defaultLimit
	if v := q.Get("limit"); q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return badRequest("limit", fmt.Sprintf("limit must be a whole number from 1 to %d", maxLimit))
		}
		limit = n
	}
	var before int64
	if q.Has("before") {
		var err error
		if before, err = parseID(q.Get("before")); err != nil {
			return badRequest("before", "before must be a message id, a whole number from 1")
		}
	}
	list, more, err := a.store.ListMessages(r.Context(), before, limit)
	if err != nil {
		return err
	}
	out := struct {
		Messages []messageJSON `json:"messages"`
		Next     string        `json:"next,omitempty"`
	}{Messages: make([]messageJSON, 0, len(list))}
	for _, m := range list {
		out.Messages = append(out.Messages, toJSON(m))
	}
	if more {
		out.Next = fmt.Sprintf("/api/messages?limit=%d&before=%d", limit, list[len(list)-1].ID)
		w.Header().Set("Link", "<"+out.Next+`>; rel="next"`)
	}
	body, err := marshal(out)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, errors.New("not an id")
	}
	return id, nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		return 0, badRequest("id", "the id in the path must be a whole number from 1")
	}
	return id, nil
}

// getMessage is GET /api/messages/{id}.
func (a *api) getMessage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if a.store == nil {
		return errNoDatabase
	}
	m, err := a.store.GetMessage(r.Context(), id)
	if err != nil {
		return err
	}
	body, err := marshal(toJSON(m))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// deleteMessage is DELETE /api/messages/{id}, for moderators: the
// credentials are checked before anything else, so nobody else learns
// even whether an id exists.
func (a *api) deleteMessage(w http.ResponseWriter, r *http.Request) error {
	if err := a.authorize(r); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if a.store == nil {
		return errNoDatabase
	}
	if err := a.store.DeleteMessage(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

const challenge = `Bearer realm="scalable-app"`

// authorize checks Authorization: Bearer <token> against the moderator
// token in constant time.
func (a *api) authorize(r *http.Request) error {
	if a.token == nil {
		return &requestError{status: http.StatusForbidden,
			detail: "deleting messages is off: the service has no MODERATOR_TOKEN configured"}
	}
	scheme, presented, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return &requestError{status: http.StatusUnauthorized, authenticate: challenge,
			detail: "moderators only: send Authorization: Bearer <MODERATOR_TOKEN>"}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(presented)))
	if subtle.ConstantTimeCompare(sum[:], a.token) != 1 {
		return &requestError{status: http.StatusUnauthorized, authenticate: challenge + `, error="invalid_token"`,
			detail: "the bearer token is not the moderator token"}
	}
	return nil
}
