package runner

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
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
