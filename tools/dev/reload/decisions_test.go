package reload

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
)

// The tests in this file run the reloader with the Fake runner: the builds
// and the apps are scripted, the socket, the watcher and the error page are
// real. They check what the reloader decides, not what the programs do.

// fakeBuild scripts the n-th build (from 1): the binary's content, or the
// compiler's error.
type fakeBuild func(n int) (binary string, err error)

type fakeReloader struct {
	t       *testing.T
	fake    *command.Fake
	src     string
	out     string
	url     string
	sockIno uint64
	cycles  chan Cycle
	cancel  context.CancelFunc
	done    chan error

	mu       sync.Mutex
	onStart  func(c command.Cmd) // called as each app starts
	startIno []uint64            // inode of each start's fd 3, taken while it was open
}

// startFakeReloader runs a reloader whose apps print appOutput and whose
// stdout is stdout (nil: discarded).
func startFakeReloader(t *testing.T, build fakeBuild, appOutput string, stdout io.Writer) *fakeReloader {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnFile, err := dupFile(ln.(syscall.Conn))
	if err != nil {
		t.Fatal(err)
	}
	ino, err := inodeOf(lnFile)
	lnFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fr := &fakeReloader{
		t: t, src: src, out: t.TempDir(), url: "http://" + ln.Addr().String() + "/", sockIno: ino,
		cycles: make(chan Cycle, 10), cancel: cancel, done: make(chan error, 1),
	}
	builds := 0
	fr.fake = &command.Fake{Respond: func(c command.Cmd) (string, error) {
		switch {
		case c.Name == "go" && len(c.Args) > 0 && c.Args[0] == "build":
			builds++
			bin, err := build(builds)
			if err != nil {
				return "", err
			}
			return "", os.WriteFile(c.Args[slices.Index(c.Args, "-o")+1], []byte(bin), 0o755)
		case c.Name == "/hotreload-shim":
			ino, err := inodeOf(c.ExtraFiles[0])
			if err != nil {
				t.Errorf("fd 3 of the app: %v", err)
			}
			fr.mu.Lock()
			fr.startIno = append(fr.startIno, ino)
			onStart := fr.onStart
			fr.mu.Unlock()
			if onStart != nil {
				onStart(c)
			}
			return appOutput, nil
		}
		t.Errorf("unexpected command %s", c.Line())
		return "", errors.New("unexpected command")
	}}
	if stdout == nil {
		stdout = io.Discard
	}
	logw := &testWriter{t: t}
	cfg := Config{
		Dir:          src,
		Listener:     ln,
		Runner:       command.New(fr.fake, logw),
		OutDir:       fr.out,
		BuildFlags:   []string{"-ldflags=-s -w"},
		AppArgs:      []string{"--log-format=text"},
		Env:          []string{"APP_SETTING=1", "LISTEN_PID=42"},
		Watch:        WatchPoll,
		PollInterval: 10 * time.Millisecond,
		Debounce:     10 * time.Millisecond,
		// A fake process never accepts: it counts as ready after this.
		ReadyTimeout: 20 * time.Millisecond,
		StopTimeout:  5 * time.Second,
		Shim:         "/hotreload-shim",
		Stdout:       stdout,
		Stderr:       logw,
		Logger:       slog.New(slog.NewTextHandler(logw, nil)),
		OnCycle:      func(c Cycle) { fr.cycles <- c },
	}
	go func() { fr.done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		<-fr.done
		logw.stop()
	})
	return fr
}

func (fr *fakeReloader) nextCycle() Cycle {
	fr.t.Helper()
	select {
	case c := <-fr.cycles:
		return c
	case err := <-fr.done:
		fr.t.Fatalf("Run returned %v", err)
	case <-time.After(10 * time.Second):
		fr.t.Fatal("no cycle within 10s")
	}
	return Cycle{}
}

// edit saves a file, which makes the next cycle.
func (fr *fakeReloader) edit(content string) {
	fr.t.Helper()
	if err := os.WriteFile(filepath.Join(fr.src, "main.go"), []byte(content), 0o644); err != nil {
		fr.t.Fatal(err)
	}
}

// app is the one app running.
func (fr *fakeReloader) app() *command.FakeProcess {
	fr.t.Helper()
	running := fr.fake.Running()
	if len(running) != 1 {
		fr.t.Fatalf("%d apps running, want 1", len(running))
	}
	return running[0]
}

func (fr *fakeReloader) starts() []command.Cmd {
	var starts []command.Cmd
	for _, c := range fr.fake.Calls() {
		if c.Name == "/hotreload-shim" {
			starts = append(starts, c)
		}
	}
	return starts
}

// stop cancels Run and checks that it returned nil.
func (fr *fakeReloader) stop() {
	fr.t.Helper()
	fr.cancel()
	select {
	case err := <-fr.done:
		if err != nil {
			fr.t.Errorf("Run returned %v after cancel, want nil", err)
		}
		fr.done <- err
	case <-time.After(10 * time.Second):
		fr.t.Fatal("Run did not return within 10s of cancel")
	}
}

func waitExited(t *testing.T, p *command.FakeProcess) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !p.Exited() {
		if time.Now().After(deadline) {
			t.Fatalf("app %s still runs after 10s", p.Cmd.Args[0])
		}
		time.Sleep(time.Millisecond)
	}
}

func fetchPage(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func distinctBinaries(n int) (string, error) { return "binary " + strconv.Itoa(n), nil }

func TestFirstBuildStartsTheAppOnTheSocket(t *testing.T) {
	fr := startFakeReloader(t, distinctBinaries, "", nil)
	if c := fr.nextCycle(); c.Result != "reloaded" {
		t.Fatalf("first cycle: %+v, want reloaded", c)
	}
	bin := filepath.Join(fr.out, "app-1")
	wantLines := []string{
		`go build -o ` + bin + ` -mod=readonly -trimpath -buildvcs=false "-ldflags=-s -w" ./cmd/scalable-app`,
		`/hotreload-shim ` + bin + ` --log-format=text`,
	}
	if got := fr.fake.Lines(); !slices.Equal(got, wantLines) {
		t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
	}
	build := fr.fake.Calls()[0]
	if build.Dir != fr.src {
		t.Errorf("go build ran in %q, want the source tree %q", build.Dir, fr.src)
	}
	start := fr.starts()[0]
	if !start.OwnGroup {
		t.Error("the app does not get a process group of its own: a Ctrl-C would reach it before the reloader")
	}
	if len(start.ExtraFiles) != 1 {
		t.Fatalf("the app gets %d extra files, want the socket alone as fd 3", len(start.ExtraFiles))
	}
	fr.mu.Lock()
	ino := fr.startIno[0]
	fr.mu.Unlock()
	if ino != fr.sockIno {
		t.Errorf("fd 3 of the app is inode %d, the listening socket is %d", ino, fr.sockIno)
	}
	if start.Dir != fr.src {
		t.Errorf("the app runs in %q, want %q", start.Dir, fr.src)
	}
	for _, want := range []string{"APP_SETTING=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=http", shimEnv + "=" + strconv.Itoa(os.Getpid())} {
		if !slices.Contains(start.Env, want) {
			t.Errorf("the app's environment %q lacks %s", start.Env, want)
		}
	}
	if slices.Contains(start.Env, "LISTEN_PID=42") {
		t.Error("the app's environment passes on a LISTEN_PID: only the shim may set it, to the app's own PID")
	}
	p := fr.app()
	fr.stop()
	waitExited(t, p)
	if sigs := p.Signals(); !slices.Equal(sigs, []os.Signal{syscall.SIGTERM}) {
		t.Errorf("at shutdown the app got %v, want SIGTERM alone (a graceful stop)", sigs)
	}
}

func TestSuccessfulBuildStartsTheNewAppBeforeStoppingTheOld(t *testing.T) {
	fr := startFakeReloader(t, distinctBinaries, "", nil)
	fr.nextCycle()
	old := fr.app()
	var oldAtStart []os.Signal
	oldExitedAtStart := true
	fr.mu.Lock()
	fr.onStart = func(command.Cmd) {
		oldAtStart, oldExitedAtStart = old.Signals(), old.Exited()
	}
	fr.mu.Unlock()

	fr.edit("package main // edited\n")
	if c := fr.nextCycle(); c.Result != "reloaded" || !slices.Equal(c.Changed, []string{"main.go"}) {
		t.Fatalf("cycle after the edit: %+v, want reloaded with main.go changed", c)
	}
	starts := fr.starts()
	if len(starts) != 2 || starts[1].Args[0] != filepath.Join(fr.out, "app-2") {
		t.Fatalf("starts %v, want the second build started", fr.fake.Lines())
	}
	if len(oldAtStart) != 0 || oldExitedAtStart {
		t.Errorf("the old app was signalled %v (exited: %v) before the new one started: clients would wait for nothing", oldAtStart, oldExitedAtStart)
	}
	waitExited(t, old)
	if sigs := old.Signals(); !slices.Equal(sigs, []os.Signal{syscall.SIGTERM}) {
		t.Errorf("the old app got %v, want SIGTERM alone", sigs)
	}
	cur := fr.app()
	if cur.Cmd.Args[0] != filepath.Join(fr.out, "app-2") || len(cur.Signals()) != 0 {
		t.Errorf("running %s with signals %v, want app-2 untouched", cur.Cmd.Args[0], cur.Signals())
	}
	// The old binary goes once its process has exited.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(fr.out, "app-1")); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("app-1 not removed 10s after its app was stopped")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFailedBuildStopsTheAppAndShowsTheCompilerOutput(t *testing.T) {
	var oldDuringBuild []os.Signal
	var fr *fakeReloader
	var old *command.FakeProcess
	ready := make(chan struct{})
	fr = startFakeReloader(t, func(n int) (string, error) {
		if n != 2 {
			return distinctBinaries(n)
		}
		<-ready
		oldDuringBuild = old.Signals()
		return "", errors.New("./main.go:3:2: undefined: notDefinedAnywhere")
	}, "", nil)
	fr.nextCycle()
	old = fr.app()
	close(ready)

	fr.edit("package main\n\nvar _ = notDefinedAnywhere\n")
	if c := fr.nextCycle(); c.Result != "build failed" {
		t.Fatalf("cycle after the broken edit: %+v, want build failed", c)
	}
	if len(oldDuringBuild) != 0 {
		t.Errorf("the old app was signalled %v during the build: it must serve until the build's outcome is known", oldDuringBuild)
	}
	if n := len(fr.starts()); n != 1 {
		t.Errorf("%d apps started, want only the first: a failed build starts nothing", n)
	}
	// One socket, one server: the old app stops so that the page answers.
	waitExited(t, old)
	if sigs := old.Signals(); !slices.Equal(sigs, []os.Signal{syscall.SIGTERM}) {
		t.Errorf("the old app got %v, want SIGTERM alone", sigs)
	}
	status, body := fetchPage(t, fr.url)
	if status != http.StatusInternalServerError || !strings.Contains(body, "Build failed") ||
		!strings.Contains(body, "./main.go:3:2: undefined: notDefinedAnywhere") {
		t.Errorf("the socket answers %d:\n%s\nwant 500 with the compiler output", status, body)
	}

	// The fix replaces the page with a new app.
	fr.edit("package main // fixed\n")
	if c := fr.nextCycle(); c.Result != "reloaded" || len(fr.starts()) != 2 {
		t.Errorf("cycle after the fix: %+v with %d starts, want reloaded with a second start", c, len(fr.starts()))
	}
}

func TestUnchangedBinaryKeepsTheApp(t *testing.T) {
	fr := startFakeReloader(t, func(int) (string, error) { return "the same binary", nil }, "", nil)
	fr.nextCycle()
	old := fr.app()
	fr.edit("package main // a comment changes nothing\n")
	if c := fr.nextCycle(); c.Result != "unchanged" {
		t.Fatalf("cycle after the edit: %+v, want unchanged", c)
	}
	if n := len(fr.starts()); n != 1 {
		t.Errorf("%d apps started, want 1: the same binary needs no restart", n)
	}
	if old.Exited() || len(old.Signals()) != 0 {
		t.Errorf("the app was signalled %v (exited: %v) for an unchanged binary", old.Signals(), old.Exited())
	}
	if _, err := os.Stat(filepath.Join(fr.out, "app-2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unused binary app-2 was kept (stat: %v)", err)
	}
}

func TestCrashShowsTheAppsLastOutput(t *testing.T) {
	out := &watchWriter{want: "panic: boom", seen: make(chan struct{})}
	fr := startFakeReloader(t, distinctBinaries, "panic: boom\n", out)
	fr.nextCycle()
	p := fr.app()
	select {
	case <-out.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the app's output did not reach the reloader's stdout")
	}
	p.Exit(errors.New("exit status 2"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := fetchPage(t, fr.url)
		if status == http.StatusInternalServerError && strings.Contains(body, "App exited") {
			if !strings.Contains(body, "panic: boom") || !strings.Contains(body, "exit status 2") {
				t.Errorf("crash page lacks the output or the status:\n%s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no crash page within 10s; last answer %d:\n%s", status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchWriter closes seen once want has been written to it.
type watchWriter struct {
	mu   sync.Mutex
	buf  strings.Builder
	want string
	seen chan struct{}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.want)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}
