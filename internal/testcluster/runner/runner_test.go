package runner

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
	r := New(&log)
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
	r := New(nil)
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
func TestStartDoesNotPassInheritedDescriptors(t *testing.T) {
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "lock")
	fd, err := syscall.Open(lockPath, syscall.O_CREAT|syscall.O_RDWR, 0o644) // no O_CLOEXEC, as flock(1) opens it
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)

	pid, err := New(nil).Start(Cmd{What: "start sleeper", Name: "sleep", Args: []string{"60"}}, filepath.Join(dir, "sleep.log"))
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
