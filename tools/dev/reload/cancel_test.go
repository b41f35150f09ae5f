package reload

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
)

// TestCancelWhileStarting stops the reloader while the new build has
// started but not yet accepted: the new process must be stopped, and the
// start-up must not be reported as a crash.
func TestCancelWhileStarting(t *testing.T) {
	// An app that takes the socket but never accepts: it stays "starting".
	src := t.TempDir()
	for name, content := range map[string]string{
		"go.mod": "module sleeper\n\ngo 1.21\n",
		"main.go": `package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	fmt.Printf("sleeper pid %d\n", os.Getpid())
	time.Sleep(time.Hour)
}
`,
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := &pidWriter{seen: make(chan int, 1)}
	logw := &testWriter{t: t}
	defer logw.stop()
	var mu sync.Mutex
	var cycles []Cycle
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Dir:          src,
			Package:      ".",
			Listener:     ln,
			Runner:       command.New(command.OS{}, logw),
			OutDir:       t.TempDir(),
			Watch:        WatchPoll,
			ReadyTimeout: 10 * time.Minute, // never "ready" by timeout here
			Stdout:       out,
			Stderr:       logw,
			Logger:       slog.New(slog.NewTextHandler(logw, nil)),
			OnCycle: func(c Cycle) {
				mu.Lock()
				cycles = append(cycles, c)
				mu.Unlock()
			},
		})
	}()

	var pid int
	select {
	case pid = <-out.seen:
	case err := <-done:
		t.Fatalf("Run returned %v before the app started", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the app did not start within 2 minutes")
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of cancel")
	}
	// Run reaps what it starts, so a stopped app is gone, not a zombie.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the app started during shutdown (pid %d) still exists after Run returned (kill 0: %v)", pid, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range cycles {
		if c.Result == "app exited" {
			t.Errorf("cancel during start-up was reported as a crash: %+v", c)
		}
	}
}

// pidWriter reports the pid the app prints first.
type pidWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	seen chan int
	sent bool
}

var pidLine = regexp.MustCompile(`sleeper pid (\d+)\n`)

func (w *pidWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := pidLine.FindSubmatch(w.buf.Bytes()); m != nil && !w.sent {
		pid, _ := strconv.Atoi(string(m[1]))
		w.seen <- pid
		w.sent = true
	}
	return len(p), nil
}
