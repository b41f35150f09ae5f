package server

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"scalable-app/internal/store"
)

//go:embed templates/guestbook.html
var templates embed.FS

var guestbookPage = template.Must(template.ParseFS(templates, "templates/guestbook.html"))

// guestbookStyle is the page's only style, inline: the CSP allows exactly
// it by its hash, and nothing else (no scripts, no other origins).
const guestbookStyle = `body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;line-height:1.5}` +
	`textarea{display:block;width:100%;box-sizing:border-box;font:inherit}button{margin-top:.5rem;font:inherit}` +
	`.notice{background:#fff3cd;border:1px solid #e0c36a;padding:.5rem 1rem}` +
	`.messages{padding-left:1.5rem}.message{margin:.75rem 0}.text{white-space:pre-wrap;overflow-wrap:anywhere}small{color:#555}`

var guestbookCSP = []string{"default-src 'none'; style-src 'sha256-" + styleHash() + "'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"}

func styleHash() string {
	sum := sha256.Sum256([]byte(guestbookStyle))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// guestbookShows is how many of the latest messages the page lists.
const guestbookShows = 50

type guestbookView struct {
	Style    template.CSS
	ServedBy string
	Notice   string
	Draft    string // the text of a refused post, to fix and send again
	Messages []guestbookEntry
}

type guestbookEntry struct {
	Text, Instance, CreatedAt, When string
}

// showGuestbook is GET /guestbook.
func (a *api) showGuestbook(w http.ResponseWriter, r *http.Request) {
	a.renderGuestbook(w, r, "", nil)
}

// signGuestbook is POST /guestbook, the form's target: on success it
// redirects to GET /guestbook (POST-redirect-GET), so reloading the page
// does not post again.
func (a *api) signGuestbook(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		if errors.As(err, new(*http.MaxBytesError)) {
			status = http.StatusRequestEntityTooLarge
		}
		a.renderGuestbook(w, r, "", &requestError{status: status, detail: "the form could not be read"})
		return
	}
	sent := r.PostForm.Get("text")
	err := errNoDatabase
	if a.store != nil {
		var text string
		if text, err = validText(sent); err == nil {
			_, err = a.store.CreateMessage(r.Context(), text, a.instance)
		}
	}
	if err != nil {
		a.renderGuestbook(w, r, sent, err)
		return
	}
	http.Redirect(w, r, "/guestbook", http.StatusSeeOther)
}

// renderGuestbook writes the page with the latest messages; failed is the
// error to tell (its status is the page's), draft the text to offer again.
func (a *api) renderGuestbook(w http.ResponseWriter, r *http.Request, draft string, failed error) {
	status := http.StatusOK
	view := guestbookView{Style: template.CSS(guestbookStyle), ServedBy: a.instance, Draft: draft}
	var list []store.Message
	err := errNoDatabase
	if a.store != nil {
		list, _, err = a.store.ListMessages(r.Context(), 0, guestbookShows)
	}
	if failed == nil {
		failed = err
	}
	if failed != nil {
		p := problemOf(failed, a.logger)
		status, view.Notice = p.Status, p.Detail
		if p.Field == "text" {
			view.Notice = "Not signed: " + p.Detail
		}
		setProblemHeaders(w.Header(), p)
	}
	for _, m := range list {
		view.Messages = append(view.Messages, guestbookEntry{Text: m.Text, Instance: m.Instance,
			CreatedAt: m.CreatedAt.UTC().Format(time.RFC3339), When: m.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC")})
	}
	var page bytes.Buffer
	if err := guestbookPage.Execute(&page, view); err != nil {
		a.logger.Error("guestbook page", "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(page.Len()))
	h["Content-Security-Policy"] = guestbookCSP
	h["X-Content-Type-Options"] = noSniff
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = page.WriteTo(w)
}
