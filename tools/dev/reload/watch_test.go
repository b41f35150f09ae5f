package reload

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExcluded(t *testing.T) {
	w := &watcher{excludes: append(DefaultExcludes(), "web/node_modules", "*.log")}
	for rel, want := range map[string]bool{
		".git":                      true,
		"sub/.git":                  true,
		"main.go":                   false,
		".main.go.swp":              true,
		"internal/server/x.go~":     true,
		"internal/server/.#x.go":    true,
		"internal/server/#x.go#":    true,
		"4913":                      true,
		"web/node_modules":          true,
		"web/node_modules/a/b.js":   true,
		"web/app.js":                false,
		"debug.log":                 true,
		"internal/server/server.go": false,
	} {
		if got := w.excluded(rel); got != want {
			t.Errorf("excluded(%q) = %v, want %v", rel, got, want)
		}
	}
}

// TestWatcherBatches checks, in both modes, that a burst of saves within
// the debounce window arrives as exactly one batch, without the ignored
// files, and that files in new and re-created directories are seen.
func TestWatcherBatches(t *testing.T) {
	const (
		poll = 20 * time.Millisecond
		// Long enough for the burst's six writes on a loaded machine,
		// much longer than a poll.
		debounce = 300 * time.Millisecond
	)
	for _, mode := range []string{WatchPoll, WatchInotify} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{".git", "pkg"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			w, err := newWatcher(dir, DefaultExcludes(), mode, poll, debounce, logger)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan []string)
			errC := make(chan error, 1)
			go func() { errC <- w.run(ctx, out) }()

			write := func(rel, content string) {
				t.Helper()
				if err := os.WriteFile(filepath.Join(dir, rel), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			next := func(what string) []string {
				t.Helper()
				select {
				case batch := <-out:
					return batch
				case err := <-errC:
					t.Fatalf("watcher stopped: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatalf("%s not reported within 10s", what)
				}
				return nil
			}
			// After a batch, nothing more may come: a split burst would.
			noMore := func(after []string) {
				t.Helper()
				select {
				case batch := <-out:
					t.Fatalf("a second batch %v followed %v: the burst was split", batch, after)
				case <-time.After(2*debounce + 5*poll):
				}
			}

			start := time.Now()
			// Ignored files first: were they seen, they would come first.
			write(".git/index", "x")
			write("pkg/.a.go.swp", "x")
			write("pkg/a.go~", "x")
			// Spread over several polls, so that polling sees the burst
			// in parts too, yet well inside the debounce window.
			write("pkg/a.go", "a")
			time.Sleep(2 * poll)
			write("pkg/b.go", "b")
			time.Sleep(2 * poll)
			write("c.go", "c")
			if took := time.Since(start); took > debounce/2 {
				t.Skipf("the burst took %s to write, too close to the %s debounce on this machine", took, debounce)
			}
			got := next("the burst")
			if want := []string{"c.go", "pkg/a.go", "pkg/b.go"}; !slices.Equal(got, want) {
				t.Fatalf("the burst arrived as batch %v, want %v", got, want)
			}
			noMore(got)

			// A file written into a new directory at once, before any watch
			// on that directory can exist; then an edit there, which in
			// inotify mode only the new directory's watch reports.
			if err := os.Mkdir(filepath.Join(dir, "newpkg"), 0o755); err != nil {
				t.Fatal(err)
			}
			write("newpkg/x.go", "x")
			if got := next("newpkg/x.go"); !slices.Equal(got, []string{"newpkg/x.go"}) {
				t.Fatalf("got batch %v, want [newpkg/x.go]", got)
			}
			write("newpkg/x.go", "x edited")
			if got := next("the edit of newpkg/x.go"); !slices.Equal(got, []string{"newpkg/x.go"}) {
				t.Fatalf("got batch %v, want [newpkg/x.go]", got)
			}

			// The directory removed and re-created under the same name is
			// watched again.
			if err := os.RemoveAll(filepath.Join(dir, "newpkg")); err != nil {
				t.Fatal(err)
			}
			if got := next("the removal of newpkg"); !slices.Equal(got, []string{"newpkg/x.go"}) {
				t.Fatalf("got batch %v, want [newpkg/x.go]", got)
			}
			if err := os.Mkdir(filepath.Join(dir, "newpkg"), 0o755); err != nil {
				t.Fatal(err)
			}
			// Let a scan pick up the directory, and its watch be set up,
			// before the file appears.
			time.Sleep(debounce + 5*poll)
			write("newpkg/y.go", "y")
			if got := next("newpkg/y.go"); !slices.Equal(got, []string{"newpkg/y.go"}) {
				t.Fatalf("got batch %v, want [newpkg/y.go]", got)
			}
			write("newpkg/y.go", "y edited")
			if got := next("the edit of newpkg/y.go"); !slices.Equal(got, []string{"newpkg/y.go"}) {
				t.Fatalf("got batch %v, want [newpkg/y.go]", got)
			}
		})
	}
}

func TestErrorPageEscapesOutput(t *testing.T) {
	f := failure{Title: "Build failed", Detail: "go build failed:", Output: "main.go:1: <script>alert(1)</script>", At: time.Now()}
	for accept, want := range map[string]string{
		"text/html,application/xhtml+xml": "&lt;script&gt;alert(1)&lt;/script&gt;",
		"":                                "main.go:1: <script>alert(1)</script>",
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Accept", accept)
		f.ServeHTTP(rec, req)
		if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("Accept %q: status %d, body lacks %q:\n%s", accept, rec.Code, want, rec.Body)
		}
		if accept != "" && strings.Contains(rec.Body.String(), "<script>alert") {
			t.Error("HTML page contains the output unescaped")
		}
	}
}
