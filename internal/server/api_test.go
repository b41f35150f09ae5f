package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"scalable-app/internal/store"
	"scalable-app/internal/store/pgtest"
)

// pg is the package's PostgreSQL server, started by TestMain.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.Options{Prepare: func(ctx context.Context, url string) error {
		s, err := store.Open(url, store.Config{MaxConns: 2, QueryTimeout: 5 * time.Second}, quiet(), prometheus.NewRegistry())
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Migrate(ctx)
	}}, func(s *pgtest.Server) { pg = s })
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

const testToken = "moderator-token-0123456789"

type apiEnv struct {
	h   http.Handler
	url string // the database's
}

// newAPIEnv is the handler on a fresh, migrated database, with the
// moderator token set unless token is false.
func newAPIEnv(t *testing.T, token bool, queryTimeout time.Duration) apiEnv {
	t.Helper()
	url := pg.NewDatabase(t)
	reg := prometheus.NewRegistry()
	s, err := store.Open(url, store.Config{MaxConns: 8, QueryTimeout: queryTimeout}, quiet(), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	o := Options{Logger: quiet(), Registry: reg, Health: &Health{}, Instance: "pod-a", Store: s}
	if token {
		o.ModeratorToken = testToken
	}
	return apiEnv{h: New(o), url: url}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e apiEnv) do(method, target, body string, header ...string) response {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if method == "POST" && strings.HasPrefix(target, "/api/") {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		switch header[i+1] {
		case "":
		case "-":
			req.Header.Del(header[i])
		default:
			req.Header.Set(header[i], header[i+1])
		}
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.String()}
}

func (e apiEnv) count(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkProblem asserts an RFC 9457 answer of that status naming field
// (unless empty).
func checkProblem(t *testing.T, r response, status int, field string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if p["status"] != float64(status) || p["type"] != "about:blank" || p["title"] != http.StatusText(status) || p["detail"] == "" {
		t.Errorf("problem %v", p)
	}
	if field != "" && p["field"] != field {
		t.Errorf("field %v, want %q (%v)", p["field"], field, p["detail"])
	}
	return p
}

func TestCreateAndGetMessage(t *testing.T) {
	e := newAPIEnv(t, false, time.Second)
	r := e.do("POST", "/api/messages", `{"text": "  hello, world \n"}`)
	if r.status != 201 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatal(err)
	}
	id := m["id"].(float64)
	if loc := r.header.Get("Location"); loc != fmt.Sprintf("/api/messages/%d", int64(id)) {
		t.Errorf("Location %q for id %v", loc, id)
	}
	if m["text"] != "hello, world" || m["instance"] != "pod-a" || len(m) != 4 {
		t.Errorf("body %v", m)
	}
	created, err := time.Parse(time.RFC3339, m["created_at"].(string))
	if err != nil || !strings.HasSuffix(m["created_at"].(string), "Z") || time.Since(created) > time.Minute {
		t.Errorf("created_at %v: %v", m["created_at"], err)
	}
	got := e.do("GET", r.header.Get("Location"), "")
	if got.status != 200 || got.body != r.body {
		t.Errorf("GET %s: %d %s, want %s", r.header.Get("Location"), got.status, got.body, r.body)
	}
	// With a charset parameter, and a +json type.
	for _, ct := range []string{"application/json; charset=utf-8", "application/merge-patch+json"} {
		if r := e.do("POST", "/api/messages", `{"text":"x"}`, "Content-Type", ct); r.status != 201 {
			t.Errorf("Content-Type %s: %d", ct, r.status)
		}
	}
}

func TestCreateMessageRules(t *testing.T) {
	e := newAPIEnv(t, false, time.Second)
	before := e.count(t)
	tests := []struct {
		name, body, contentType string
		status                  int
		field                   string
	}{
		{"no content type", `{"text":"hi"}`, "-", 415, "Content-Type"},
		{"form", `text=hi`, "application/x-www-form-urlencoded", 415, "Content-Type"},
		{"text/plain", `{"text":"hi"}`, "text/plain", 415, "Content-Type"},
		{"over 16 KiB", `{"text":"` + strings.Repeat(" ", 16<<10) + `x"}`, "", 413, ""},
		{"malformed", `{"text": "hi"`, "", 400, "body"},
		{"empty body", ``, "", 400, "body"},
		{"trailing data", `{"text":"hi"} {}`, "", 400, "body"},
		{"array", `["hi"]`, "", 400, "body"},
		{"unknown field", `{"text":"hi","author":"me"}`, "", 400, "author"},
		{"field in another case", `{"Text":"hi"}`, "", 400, "Text"},
		{"missing text", `{}`, "", 400, "text"},
		{"null text", `{"text":null}`, "", 400, "text"},
		{"number text", `{"text":42}`, "", 400, "text"},
		{"empty text", `{"text":""}`, "", 400, "text"},
		{"spaces only", `{"text":" \t\n "}`, "", 400, "text"},
		{"1001 characters", `{"text":"` + strings.Repeat("é", 1001) + `"}`, "", 400, "text"},
		{"invalid UTF-8", "{\"text\":\"\xff\xfe\"}", "", 400, "text"},
		{"NUL", `{"text":"a\u0000b"}`, "", 400, "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/api/messages", tt.body, "Content-Type", tt.contentType)
			checkProblem(t, r, tt.status, tt.field)
		})
	}
	if n := e.count(t); n != before {
		t.Errorf("%d messages created by refused requests", n-before)
	}
	// 1000 characters of two bytes each (2000 bytes), padded: accepted.
	r := e.do("POST", "/api/messages", `{"text":"  `+strings.Repeat("é", 1000)+`  "}`)
	if r.status != 201 {
		t.Fatalf("1000 characters: %d %s", r.status, r.body)
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := newAPIEnv(t, false, 5*time.Second)
	first := e.do("POST", "/api/messages", `{"text":"once"}`, "Idempotency-Key", "k-1")
	if first.status != 201 || first.header.Get(replayedHeader) != "" {
		t.Fatalf("first: %d %v", first.status, first.header)
	}
	again := e.do("POST", "/api/messages", `{"text":"once"}`, "Idempotency-Key", "k-1")
	if again.status != 201 || again.body != first.body || again.header.Get("Location") != first.header.Get("Location") ||
		again.header.Get(replayedHeader) != "true" {
		t.Fatalf("retry: %d %q %v, want the first answer %q replayed", again.status, again.body, again.header, first.body)
	}
	// The draft's quoted form is the same key.
	if quoted := e.do("POST", "/api/messages", `{"text":"once"}`, "Idempotency-Key", `"k-1"`); quoted.body != first.body {
		t.Errorf("quoted key: %d %s", quoted.status, quoted.body)
	}
	checkProblem(t, e.do("POST", "/api/messages", `{"text":"twice"}`, "Idempotency-Key", "k-1"), 422, "Idempotency-Key")
	if n := e.count(t); n != 1 {
		t.Fatalf("%d messages after a retry and a reuse, want 1", n)
	}
	if other := e.do("POST", "/api/messages", `{"text":"once"}`, "Idempotency-Key", "k-2"); other.status != 201 || other.body == first.body {
		t.Errorf("another key: %d %s", other.status, other.body)
	}
	checkProblem(t, e.do("POST", "/api/messages", `{"text":"x"}`, "Idempotency-Key", strings.Repeat("k", 256)), 400, "Idempotency-Key")
	checkProblem(t, e.do("POST", "/api/messages", `{"text":"x"}`, "Idempotency-Key", "caf\u00e9"), 400, "Idempotency-Key")
}

// TestConcurrentSameKeyOverHTTP: clients racing with one key (a retry sent
// while the first attempt is still running) create one message.
func TestConcurrentSameKeyOverHTTP(t *testing.T) {
	e := newAPIEnv(t, false, 5*time.Second)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	const n = 16
	var wg sync.WaitGroup
	bodies := make([]string, n)
	replays := make([]bool, n)
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", srv.URL+"/api/messages", strings.NewReader(`{"text":"race"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "race-key")
			resp, err := srv.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 201 {
				errs <- fmt.Errorf("status %d: %s", resp.StatusCode, b)
			}
			bodies[i], replays[i] = string(b), resp.Header.Get(replayedHeader) == "true"
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fresh := 0
	for i := range n {
		if bodies[i] != bodies[0] {
			t.Errorf("answer %d %q differs from %q", i, bodies[i], bodies[0])
		}
		if !replays[i] {
			fresh++
		}
	}
	if c := e.count(t); c != 1 || fresh != 1 {
		t.Fatalf("%d messages, %d answers not replayed; want 1 and 1", c, fresh)
	}
}

func TestListPagination(t *testing.T) {
	e := newAPIEnv(t, false, time.Second)
	empty := e.do("GET", "/api/messages", "")
	if empty.status != 200 || empty.body != `{"messages":[]}` || empty.header.Get("Link") != "" {
		t.Fatalf("empty list: %d %s", empty.status, empty.body)
	}
	const total = 45
	for i := range total {
		if r := e.do("POST", "/api/messages", fmt.Sprintf(`{"text":"m%d"}`, i)); r.status != 201 {
			t.Fatal(r.body)
		}
	}
	type page struct {
		Messages []struct {
			ID   int64  `json:"id"`
			Text string `json:"text"`
		} `json:"messages"`
		Next *string `json:"next"`
	}
	var seen []int64
	target, pages := "/api/messages", 0
	for target != "" {
		r := e.do("GET", target, "")
		var p page
		if r.status != 200 || json.Unmarshal([]byte(r.body), &p) != nil {
			t.Fatalf("GET %s: %d %s", target, r.status, r.body)
		}
		pages++
		for _, m := range p.Messages {
			seen = append(seen, m.ID)
		}
		link := r.header.Get("Link")
		if p.Next == nil {
			if link != "" {
				t.Errorf("last page has Link %q", link)
			}
			if len(p.Messages) != total%20 {
				t.Errorf("last page holds %d", len(p.Messages))
			}
			break
		}
		if len(p.Messages) != 20 || link != "<"+*p.Next+`>; rel="next"` || !strings.Contains(r.body, `"next":"/api/messages?limit=20&before=`) {
			t.Fatalf("page %d: %d messages, next %q, Link %q", pages, len(p.Messages), *p.Next, link)
		}
		target = *p.Next
	}
	if pages != 3 || len(seen) != total {
		t.Fatalf("%d pages, %d messages; want 3, %d", pages, len(seen), total)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] >= seen[i-1] {
			t.Fatalf("not newest first at %d: %v", i, seen)
		}
	}
	// Exactly limit left: no next.
	r := e.do("GET", fmt.Sprintf("/api/messages?limit=5&before=%d", seen[total-5]+0), "")
	var p page
	json.Unmarshal([]byte(r.body), &p)
	if len(p.Messages) != 4 || p.Next != nil {
		t.Errorf("before the 5th oldest: %s", r.body)
	}
	r = e.do("GET", "/api/messages?limit=100", "")
	json.Unmarshal([]byte(r.body), &p)
	if r.status != 200 || len(p.Messages) != total || p.Next != nil {
		t.Errorf("limit=100: %d, %d messages", r.status, len(p.Messages))
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=abc", "limit=", "limit=-1"} {
		checkProblem(t, e.do("GET", "/api/messages?"+q, ""), 400, "limit")
	}
	for _, q := range []string{"before=0", "before=abc", "before=-3", "before=99999999999999999999"} {
		checkProblem(t, e.do("GET", "/api/messages?"+q, ""), 400, "before")
	}
}

func TestGetMessageErrors(t *testing.T) {
	e := newAPIEnv(t, false, time.Second)
	checkProblem(t, e.do("GET", "/api/messages/12345", ""), 404, "")
	for _, id := range []string{"abc", "0", "-1", "1.5", "99999999999999999999"} {
		checkProblem(t, e.do("GET", "/api/messages/"+id, ""), 400, "id")
	}
}

func TestDeleteIsForModerators(t *testing.T) {
	off := newAPIEnv(t, false, time.Second)
	checkProblem(t, off.do("DELETE", "/api/messages/1", "", "Authorization", "Bearer "+testToken), 403, "")

	e := newAPIEnv(t, true, time.Second)
	created := e.do("POST", "/api/messages", `{"text":"spam"}`)
	loc := created.header.Get("Location")
	r := e.do("DELETE", loc, "")
	checkProblem(t, r, 401, "")
	if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="scalable-app"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
	for _, auth := range []string{"Bearer wrong-token-0123456789", "Bearer " + testToken + "x", "Basic " + testToken, testToken} {
		r := e.do("DELETE", loc, "", "Authorization", auth)
		checkProblem(t, r, 401, "")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("%q: WWW-Authenticate %q", auth, r.header.Get("WWW-Authenticate"))
		}
	}
	checkProblem(t, e.do("DELETE", "/api/messages/abc", "", "Authorization", "Bearer "+testToken), 400, "id")
	if r := e.do("DELETE", loc, "", "Authorization", "bearer "+testToken); r.status != 204 || r.body != "" {
		t.Fatalf("moderator's DELETE: %d %s", r.status, r.body)
	}
	checkProblem(t, e.do("DELETE", loc, "", "Authorization", "Bearer "+testToken), 404, "")
	checkProblem(t, e.do("GET", loc, ""), 404, "")
}

// TestNoDatabaseConfigured: /api says how to configure one, with
// Retry-After; the greeting and the probes are as before.
func TestNoDatabaseConfigured(t *testing.T) {
	h, _, _, _ := newTestHandler(t)
	e := apiEnv{h: h}
	for _, r := range []response{
		e.do("POST", "/api/messages", `{"text":"hi"}`),
		e.do("GET", "/api/messages", ""),
		e.do("GET", "/api/messages/1", ""),
	} {
		p := checkProblem(t, r, 503, "")
		if r.header.Get("Retry-After") != "2" || !strings.Contains(p["detail"].(string), "DATABASE_URL") ||
			!strings.Contains(p["detail"].(string), "PGHOST") {
			t.Errorf("Retry-After %q, detail %v", r.header.Get("Retry-After"), p["detail"])
		}
	}
	page := e.do("GET", "/guestbook", "")
	if page.status != 503 || !strings.Contains(page.body, `class="notice"`) || !strings.Contains(page.body, "DATABASE_URL") {
		t.Errorf("guestbook without a database: %d %s", page.status, page.body)
	}
	for _, path := range []string{"/", "/healthz", "/readyz"} {
		if r := e.do("GET", path, ""); r.status != 200 {
			t.Errorf("%s: %d", path, r.status)
		}
	}
}

func TestGuestbook(t *testing.T) {
	e := newAPIEnv(t, false, time.Second)
	const evil = `<script>alert("x")</script> & <b>bold</b>`
	form := url.Values{"text": {evil}}.Encode()
	r := e.do("POST", "/guestbook", form, "Content-Type", "application/x-www-form-urlencoded")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/guestbook" {
		t.Fatalf("form post: %d, Location %q, want 303 to /guestbook", r.status, r.header.Get("Location"))
	}
	e.do("POST", "/api/messages", `{"text":"second"}`)

	page := e.do("GET", "/guestbook", "")
	if page.status != 200 || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /guestbook: %d %q", page.status, page.header.Get("Content-Type"))
	}
	if strings.Contains(page.body, "<script") || strings.Contains(page.body, "<b>") {
		t.Fatalf("user text not escaped:\n%s", page.body)
	}
	if !strings.Contains(page.body, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;`) {
		t.Errorf("escaped text missing:\n%s", page.body)
	}
	items := regexp.MustCompile(`<li class="message"><span class="text">([^<]*)</span>.*?<code class="instance">([^<]*)</code>`).FindAllStringSubmatch(page.body, -1)
	if len(items) != 2 || items[0][1] != "second" || items[1][2] != "pod-a" {
		t.Errorf("messages, newest first, with their instance: %q", items)
	}
	if !strings.Contains(page.body, `name="text"`) || !strings.Contains(page.body, `<button type="submit">Sign the guestbook</button>`) ||
		!strings.Contains(page.body, `<form method="post" action="/guestbook">`) {
		t.Errorf("form missing:\n%s", page.body)
	}

	csp := page.header.Get("Content-Security-Policy")
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(page.body)
	if style == nil {
		t.Fatal("no style element")
	}
	sum := sha256.Sum256([]byte(style[1]))
	for _, want := range []string{"default-src 'none'", "form-action 'self'", "frame-ancestors 'none'",
		"style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows scripts or unsafe sources", csp)
	}

	// Refused: re-rendered with a notice and the draft, nothing stored.
	bad := e.do("POST", "/guestbook", "text=+++", "Content-Type", "application/x-www-form-urlencoded")
	if bad.status != 400 || !strings.Contains(bad.body, `class="notice"`) || bad.header.Get("Content-Security-Policy") == "" {
		t.Errorf("blank text: %d\n%s", bad.status, bad.body)
	}
	// Another site's form posting here.
	cross := e.do("POST", "/guestbook", "text=spam", "Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site")
	if cross.status != 403 {
		t.Errorf("cross-site post: %d, want 403", cross.status)
	}
	if n := e.count(t); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// TestClientDisconnectCancelsItsQuery: a POST whose query waits in the
// database (on the row of an Idempotency-Key that another session holds
// locked) is cancelled in the database when its client goes away, long
// before the query timeout: the handler passes the request's context down.
func TestClientDisconnectCancelsItsQuery(t *testing.T) {
	e := newAPIEnv(t, false, 30*time.Second)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (key, fingerprint) VALUES ('held', 'x')`); err != nil {
		t.Fatal(err)
	}
	waiting := func() int64 {
		var n int64
		if err := holder.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	reqCtx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(reqCtx, "POST", srv.URL+"/api/messages", bytes.NewReader([]byte(`{"text":"hi"}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "held")
	done := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for waiting() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the request's query never waited on the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	gone := time.Now()
	cancel() // the client disconnects
	<-done
	for waiting() != 0 {
		if time.Since(gone) > 5*time.Second {
			t.Fatal("the query still runs in the database 5 s after its client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("query cancelled in the database %s after the client left", time.Since(gone).Round(time.Millisecond))
}
