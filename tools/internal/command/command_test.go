package command

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFailureNamesWhatAndCommandAndStderr(t *testing.T) {
	var log strings.Builder
	r := New(OS{}, &log)
	_, err := r.Exec(context.Background(), Cmd{What: "list things", Name: "sh", Args: []string{"-c", "echo boom >&2; exit 3"}})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"list things", "sh -c", "exit status 3", "boom"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Errorf("error does not unwrap to *exec.ExitError: %T", err)
	}
	if !strings.Contains(log.String(), "run: sh -c") || !strings.Contains(log.String(), "failed") {
		t.Errorf("log lacks the command and its outcome:\n%s", log.String())
	}
}

func TestPipe(t *testing.T) {
	var out strings.Builder
	r := New(OS{}, nil)
	err := r.Pipe(context.Background(), "copy",
		Cmd{Name: "printf", Args: []string{"a\\nb\\n"}},
		Cmd{Name: "wc", Args: []string{"-l"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "2" {
		t.Fatalf("got %q, want 2", out.String())
	}
	err = r.Pipe(context.Background(), "copy",
		Cmd{Name: "sh", Args: []string{"-c", "echo no such image >&2; exit 1"}},
		Cmd{Name: "cat"})
	if err == nil || !strings.Contains(err.Error(), "no such image") {
		t.Fatalf("a failing producer must fail the pipe with its stderr, got %v", err)
	}
}

// A daemon must not keep a descriptor the harness inherited without
// close-on-exec, such as the lock file of `flock FILE make cluster-up`.
func TestDaemonDoesNotGetInheritedDescriptors(t *testing.T) {
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "lock")
	fd, err := syscall.Open(lockPath, syscall.O_CREAT|syscall.O_RDWR, 0o644) // no O_CLOEXEC, as flock(1) opens it
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)

	pid, err := New(OS{}, nil).Daemon(Cmd{What: "start sleeper", Name: "sleep", Args: []string{"60"}}, filepath.Join(dir, "sleep.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)

	// Until exec has finished, /proc shows the forked copy of this process.
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	deadline := time.Now().Add(10 * time.Second)
	for {
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		if filepath.Base(exe) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not exec sleep (exe %q)", pid, exe)
		}
		time.Sleep(10 * time.Millisecond)
	}
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, _ := os.Readlink(filepath.Join(fdDir, e.Name())); target == lockPath {
			t.Fatalf("the started process holds fd %s on %s", e.Name(), lockPath)
		}
	}
}

func TestStartedProcessEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var log strings.Builder
	p, err := New(OS{}, &log).Start(ctx, Cmd{What: "sleep", Name: "sleep", Args: []string{"60"}, OwnGroup: true})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("sleep 60 ended with its context but reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the process outlived its context by 10 s")
	}
	if !strings.Contains(log.String(), "start: sleep 60") {
		t.Errorf("log lacks the started command:\n%s", log.String())
	}
}

func TestFakeRecordsAndAnswers(t *testing.T) {
	fake := &Fake{Respond: func(c Cmd) (string, error) {
		if c.Name == "kubectl" && len(c.Args) > 0 && c.Args[0] == "get" {
			return "", errors.New("NotFound")
		}
		return "v1\n", nil
	}}
	r := New(fake, nil)
	out, err := r.Output(context.Background(), "version", "kubectl", "version")
	if err != nil || string(out) != "v1\n" {
		t.Fatalf("Output = %q, %v; want the scripted v1", out, err)
	}
	_, err = r.Output(context.Background(), "look for the deployment", "kubectl", "get", "deploy/x")
	if err == nil || !strings.Contains(err.Error(), "look for the deployment") || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("a scripted failure must come back wrapped with what and the error output, got %v", err)
	}
	want := []string{"kubectl version", "kubectl get deploy/x"}
	if got := fake.Lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("Lines() = %q, want %q", got, want)
	}
	p, err := r.Start(context.Background(), Cmd{What: "forward", Name: "kubectl", Args: []string{"port-forward"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(fake.Running()) != 1 {
		t.Fatalf("Running() = %d processes, want 1", len(fake.Running()))
	}
	_ = p.Signal(syscall.SIGTERM)
	if err := p.Wait(); err == nil {
		t.Fatal("a fake process ended by SIGTERM reported success")
	}
	if len(fake.Running()) != 0 {
		t.Fatal("a signalled fake process still runs")
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	tail := &Tail{Max: 4}
	_, _ = tail.Write([]byte("abc"))
	_, _ = tail.Write([]byte("defg"))
	if got := tail.String(); got != "defg" {
		t.Fatalf("Tail = %q, want defg", got)
	}
	if got := LastLines("a\nb\nc\n\n", 2); got != "b\nc" {
		t.Fatalf("LastLines = %q", got)
	}
}

// One writer for both streams gets both, as `2>&1` would.
func TestOneWriterForStdoutAndStderrGetsBoth(t *testing.T) {
	var both strings.Builder
	for i := 0; i < 20; i++ {
		both.Reset()
		_, err := New(OS{}, nil).Exec(context.Background(), Cmd{What: "write both", Name: "sh",
			Args: []string{"-c", "echo out; echo err >&2"}, Stdout: &both, Stderr: &both})
		if err != nil {
			t.Fatal(err)
		}
		if got := both.String(); !strings.Contains(got, "out\n") || !strings.Contains(got, "err\n") {
			t.Fatalf("run %d: got %q, want both lines", i, got)
		}
	}
}
