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
	w := &watcher{excludes: append(slices.Clone(DefaultExcludes), "web/node_modules", "*.log")}
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

// TestWatcherBatches checks, in both modes, that ignored files never show
// up and that a burst of saves arrives as one batch.
func TestWatcherBatches(t *testing.T) {
	for _, mode := range []string{WatchPoll, WatchInotify} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{".git", "pkg"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			w, err := newWatcher(dir, DefaultExcludes, mode, 20*time.Millisecond, 30*time.Millisecond, logger)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan []string)
			errC := make(chan error, 1)
			go func() { errC <- w.run(ctx, out) }()

			write := func(rel string) {
				if err := os.WriteFile(filepath.Join(dir, rel), []byte(rel), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// Ignored files first: were they seen, they would come first.
			write(".git/index")
			write("pkg/.a.go.swp")
			write("pkg/a.go~")
			write("pkg/a.go")
			write("pkg/b.go")
			write("c.go")
			var got []string
			deadline := time.After(10 * time.Second)
			for len(got) < 3 {
				select {
				case batch := <-out:
					got = append(got, batch...)
				case err := <-errC:
					t.Fatalf("watcher stopped: %v", err)
				case <-deadline:
					t.Fatalf("changes not reported within 10s; got %v", got)
				}
			}
			slices.Sort(got)
			if want := []string{"c.go", "pkg/a.go", "pkg/b.go"}; !slices.Equal(got, want) {
				t.Errorf("reported %v, want %v", got, want)
			}

			// A file written into a new directory at once, before any watch
			// on that directory can exist.
			if err := os.Mkdir(filepath.Join(dir, "newpkg"), 0o755); err != nil {
				t.Fatal(err)
			}
			write("newpkg/x.go")
			for !slices.Contains(got, "newpkg/x.go") {
				select {
				case batch := <-out:
					got = append(got, batch...)
				case <-deadline:
					t.Fatalf("newpkg/x.go not reported within 10s; got %v", got)
				}
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
