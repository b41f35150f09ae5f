package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"scalable-app/internal/server"
)

// binary is the program built once for the tests that need a real process:
// signals, exit codes and inherited sockets.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scalable-app-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "scalable-app")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build scalable-app:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type process struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

// startProcess runs the binary and waits for its start-up line. Lines of
// stdout are also copied to logs, if given.
func startProcess(t *testing.T, cmd *exec.Cmd, logs ...io.Writer) *process {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			for _, w := range logs {
				fmt.Fprintln(w, sc.Text())
			}
			select {
			case lines <- sc.Text():
			default:
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	deadline := time.After(10 * time.Second)
	for p.addr == "" {
		select {
		case line := <-lines:
			p.addr = startupAddr(line)
		case err := <-p.done:
			t.Fatalf("process exited before serving: %v", err)
		case <-deadline:
			t.Fatal("no start-up line within 10s")
		}
	}
	return p
}

func (p *process) wait(t *testing.T, within time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(within):
		t.Fatalf("process still running %s after the signal", within)
		return 0, 0
	}
}

func TestSIGTERMExitsZero(t *testing.T) {
	p := startProcess(t, exec.Command(binary, "--host", "127.0.0.1", "--port", "0"))
	if status, _, body := get(t, "http://"+p.addr+"/"); status != 200 || body != server.Greeting {
		t.Fatalf("GET / = %d %q", status, body)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code, took := p.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d (after %s), want 0", code, took)
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	p := startProcess(t, exec.Command(binary, "--host", "127.0.0.1", "--port", "0", "--drain-delay", "30s"))
	p.cmd.Process.Signal(syscall.SIGINT)
	waitFor(t, "/readyz to fail", func() bool {
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	p.cmd.Process.Signal(syscall.SIGINT)
	if code, took := p.wait(t, 5*time.Second); code == 0 {
		t.Fatalf("second signal: exit status 0 after %s, want non-zero (interrupted drain)", took)
	}
}

// TestInheritedSocket: given a listening socket by the systemd protocol,
// the program serves on it and never binds its own port.
func TestInheritedSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// LISTEN_PID must be the child's own pid, known only after fork: the
	// shell sets it, then replaces itself with the program.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, binary, "--port", "1")
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{f} // becomes fd 3
	p := startProcess(t, cmd)
	if p.addr != ln.Addr().String() {
		t.Fatalf("serves on %s, want the inherited %s", p.addr, ln.Addr())
	}
	if status, _, body := get(t, "http://"+p.addr+"/"); status != 200 || body != server.Greeting {
		t.Fatalf("GET / on the inherited socket = %d %q", status, body)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := p.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("exit status after SIGTERM on an inherited socket = %d, want 0", code)
	}
}

func TestExitStatusOnBadInput(t *testing.T) {
	out, err := exec.Command(binary, "--port", "abc").CombinedOutput()
	if err == nil {
		t.Fatal("exit status 0 for --port abc")
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `invalid value "abc" for --port`) {
		t.Fatalf("want one clear line on stderr, got %q", out)
	}
	out, err = exec.Command(binary, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--shutdown-timeout") {
		t.Fatalf("--help: %v %q", err, out)
	}
}
