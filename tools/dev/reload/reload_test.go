package reload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/internal/sourcetree"
)

func TestMain(m *testing.M) {
	// The reloader starts this test binary as its exec shim.
	ExecIfShim()
	os.Exit(m.Run())
}

// TestReloadServesEditsWithoutFailures drives the reloader in its default
// mode (polling plus inotify) over a copy of this repository's source.
func TestReloadServesEditsWithoutFailures(t *testing.T) {
	src := copySource(t)
	want := treeState(t, src)
	rl := startReloader(t, src, WatchAuto)

	waitBody(t, rl.url, http.StatusOK, "Hello from Kubernetes", 2*time.Minute)

	// How fast is `make bench-reload`'s question: a test with a time limit
	// fails whenever the machine is busy.
	t.Run("edit is served", func(t *testing.T) {
		setGreeting(t, src, want, "Hello from an edit")
		waitBody(t, rl.url, http.StatusOK, "Hello from an edit", time.Minute)
	})

	t.Run("5 reloads under load: no connection error, no failed request", func(t *testing.T) {
		h := startHammer(rl.url)
		for i := 1; i <= 5; i++ {
			text := fmt.Sprintf("Hello from reload %d", i)
			setGreeting(t, src, want, text)
			waitBody(t, rl.url, http.StatusOK, text, time.Minute)
		}
		ok, failures := h.stop()
		if len(failures) > 0 {
			t.Errorf("%d of %d requests failed during 5 reloads; first: %v", len(failures), ok+len(failures), failures[0])
		}
		if ok < 50 {
			t.Errorf("only %d requests succeeded: the hammer did not run", ok)
		}
		t.Logf("%d requests, all answered 200 with a greeting", ok)
	})

	t.Run("broken edit shows the compiler error, fix brings 200 back", func(t *testing.T) {
		setGreetingExpr(t, src, want, "notDefinedAnywhere")
		body := waitBody(t, rl.url, http.StatusInternalServerError, "undefined: notDefinedAnywhere", time.Minute)
		if !strings.Contains(body, "Build failed") {
			t.Errorf("error page lacks its title:\n%s", body)
		}
		// A browser gets the same output as HTML.
		req, _ := http.NewRequest("GET", rl.url, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		html, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || !strings.Contains(string(html), "<pre>") || !strings.Contains(string(html), "undefined: notDefinedAnywhere") {
			t.Errorf("HTML error page: status %d, body:\n%s", resp.StatusCode, html)
		}

		setGreeting(t, src, want, "Hello after the fix")
		waitBody(t, rl.url, http.StatusOK, "Hello after the fix", time.Minute)
	})

	rl.stop(t)
	if diffs := compareTree(want, treeState(t, src)); len(diffs) > 0 {
		t.Errorf("the reloader changed the source tree:\n%s", strings.Join(diffs, "\n"))
	}
}

// TestReloadPolling forces polling (what a 9p mount needs) and covers a
// burst of saves and an app that exits at start-up.
func TestReloadPolling(t *testing.T) {
	src := copySource(t)
	want := treeState(t, src)
	rl := startReloader(t, src, WatchPoll)
	waitBody(t, rl.url, http.StatusOK, "Hello from Kubernetes", 2*time.Minute)

	t.Run("edit is served", func(t *testing.T) {
		setGreeting(t, src, want, "Hello from polling")
		waitBody(t, rl.url, http.StatusOK, "Hello from polling", time.Minute)
	})

	t.Run("a burst of saves makes one build", func(t *testing.T) {
		files := []string{"internal/server/burst_a.go", "internal/server/burst_b.go", "internal/server/burst_c.go"}
		for _, f := range files {
			writeFile(t, src, want, f, "package server\n")
		}
		setGreeting(t, src, want, "Hello after a burst")
		waitBody(t, rl.url, http.StatusOK, "Hello after a burst", time.Minute)
		// The cycle that saw the first file of the burst must have seen all.
		c := rl.nextCycle(t)
		for !slices.Contains(c.Changed, files[0]) {
			c = rl.nextCycle(t)
		}
		for _, f := range append(files, greetingFile(t, src)) {
			if !slices.Contains(c.Changed, f) {
				t.Errorf("first cycle after the burst changed %v, missing %s: the burst was split", c.Changed, f)
			}
		}
	})

	t.Run("app exiting at start-up shows its output, fix brings 200 back", func(t *testing.T) {
		mainGo := filepath.Join(src, "cmd", "scalable-app", "main.go")
		orig, err := os.ReadFile(mainGo)
		if err != nil {
			t.Fatal(err)
		}
		crashing := strings.Replace(string(orig), "func main() {",
			"func main() {\n\tfmt.Fprintln(os.Stderr, \"deliberate start-up failure\")\n\tos.Exit(3)", 1)
		writeFile(t, src, want, "cmd/scalable-app/main.go", crashing)
		body := waitBody(t, rl.url, http.StatusInternalServerError, "deliberate start-up failure", time.Minute)
		if !strings.Contains(body, "exit status 3") {
			t.Errorf("crash page lacks the exit status:\n%s", body)
		}
		writeFile(t, src, want, "cmd/scalable-app/main.go", string(orig))
		waitBody(t, rl.url, http.StatusOK, "Hello after a burst", time.Minute)
	})

	rl.stop(t)
	if diffs := compareTree(want, treeState(t, src)); len(diffs) > 0 {
		t.Errorf("the reloader changed the source tree:\n%s", strings.Join(diffs, "\n"))
	}
}

// reloaderUnderTest is a reloader running in-process on a loopback port.
type reloaderUnderTest struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	cycles chan Cycle
}

func startReloader(t *testing.T, src, watch string) *reloaderUnderTest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rl := &reloaderUnderTest{
		url:    "http://" + ln.Addr().String() + "/",
		cancel: cancel,
		done:   make(chan error, 1),
		cycles: make(chan Cycle, 100),
	}
	logw := &testWriter{t: t}
	cfg := Config{
		Dir:      src,
		Listener: ln,
		Runner:   command.New(command.OS{}, logw),
		OutDir:   t.TempDir(),
		Watch:    watch,
		AppArgs:  []string{"--access-log=false", "--log-format=text"},
		Stdout:   io.Discard,
		Stderr:   logw,
		Logger:   slog.New(slog.NewTextHandler(logw, nil)),
		OnCycle:  func(c Cycle) { rl.cycles <- c },
	}
	go func() { rl.done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		<-rl.done
		logw.stop()
	})
	return rl
}

// stop sends the equivalent of SIGTERM and checks a clean exit.
func (rl *reloaderUnderTest) stop(t *testing.T) {
	t.Helper()
	rl.cancel()
	select {
	case err := <-rl.done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
		rl.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("reloader did not stop within 30s")
	}
	// The port is closed once the reloader has returned.
	if _, err := net.DialTimeout("tcp", strings.TrimSuffix(strings.TrimPrefix(rl.url, "http://"), "/"), time.Second); err == nil {
		t.Error("port still open after the reloader stopped")
	}
}

func (rl *reloaderUnderTest) nextCycle(t *testing.T) Cycle {
	t.Helper()
	select {
	case c := <-rl.cycles:
		return c
	case <-time.After(time.Minute):
		t.Fatal("no reload cycle within a minute")
		return Cycle{}
	}
}

// hammer sends requests from several clients, with and without keep-alive,
// until stopped, and records every failure.
type hammer struct {
	stopC    chan struct{}
	wg       sync.WaitGroup
	ok       atomic.Int64
	mu       sync.Mutex
	failures []error
}

func startHammer(url string) *hammer {
	h := &hammer{stopC: make(chan struct{})}
	for i := range 4 {
		client := &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: i%2 == 1},
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer client.CloseIdleConnections()
			for n := 0; n < 100000; n++ {
				select {
				case <-h.stopC:
					return
				default:
				}
				err := get(client, url)
				if err != nil {
					h.mu.Lock()
					h.failures = append(h.failures, err)
					h.mu.Unlock()
					continue
				}
				h.ok.Add(1)
			}
		}()
	}
	return h
}

func get(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("connection refused: %w", err)
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "Hello") {
		return fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	return nil
}

func (h *hammer) stop() (int, []error) {
	close(h.stopC)
	h.wg.Wait()
	return int(h.ok.Load()), h.failures
}

// waitBody polls url until it answers status with a body containing want,
// and returns that body.
func waitBody(t *testing.T, url string, status int, want string, timeout time.Duration) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == status && strings.Contains(string(body), want) {
				return string(body)
			}
			last = fmt.Sprintf("status %d, body %q", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d with %q from %s within %s; last answer: %s", status, want, url, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// greetingFile is the file that declares the greeting constant.
func greetingFile(t *testing.T, src string) string {
	t.Helper()
	rel, err := sourcetree.GreetingFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func setGreeting(t *testing.T, src string, want map[string]string, text string) {
	t.Helper()
	setGreetingExpr(t, src, want, fmt.Sprintf("%q", text))
}

func setGreetingExpr(t *testing.T, src string, want map[string]string, expr string) {
	t.Helper()
	rel := greetingFile(t, src)
	b, err := os.ReadFile(filepath.Join(src, rel))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, src, want, rel, string(sourcetree.WithGreeting(b, expr)))
}

// writeFile writes like an editor would and records the new content in the
// expected state of the tree.
func writeFile(t *testing.T, src string, want map[string]string, rel, content string) {
	t.Helper()
	p := filepath.Join(src, filepath.FromSlash(rel))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	want[rel] = fileDigest(0o644, []byte(content))
}

// copySource copies what builds the app from this repository into a
// temporary directory.
func copySource(t *testing.T) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := sourcetree.Copy(root, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func fileDigest(mode fs.FileMode, content []byte) string {
	return fmt.Sprintf("%v %x", mode, sha256.Sum256(content))
}

// treeState maps every file and directory of dir to its mode and content digest.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			state[rel] = fmt.Sprintf("dir %v", info.Mode())
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		state[rel] = fileDigest(info.Mode(), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func compareTree(want, got map[string]string) []string {
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing: "+p)
		} else if g != w {
			diffs = append(diffs, "changed: "+p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "added: "+p)
		}
	}
	return diffs
}

// testWriter sends output to t.Log until the test ends.
type testWriter struct {
	t       *testing.T
	mu      sync.Mutex
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
