package reload

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// shimEnv marks a process started as the exec shim (see ExecIfShim).
const shimEnv = "HOTRELOAD_EXEC_SHIM"

// ExecIfShim must be the first call in the main function of any program that
// runs a reloader (and in TestMain of its tests). The socket-activation
// protocol wants LISTEN_PID to be the app's own PID, which a parent cannot
// know before it forks; so the reloader starts its own executable with
// shimEnv set, and that process, here, sets LISTEN_PID to its PID and execs
// the app, which keeps the PID. It returns when the process is not a shim.
func ExecIfShim() {
	if os.Getenv(shimEnv) == "" {
		return
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "hotreload shim: no program to run")
		os.Exit(127)
	}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, shimEnv+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()))
	err := syscall.Exec(os.Args[1], os.Args[1:], env)
	fmt.Fprintf(os.Stderr, "hotreload shim: exec %s: %v\n", os.Args[1], err)
	os.Exit(127)
}

// childEnv is env without variables meant for this process's own
// supervisor, plus the ones that hand the socket on.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", shimEnv:
			continue
		}
		out = append(out, kv)
	}
	return append(out, shimEnv+"=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=http")
}

// app is one run of the built program.
type app struct {
	binary  string
	cmd     *exec.Cmd
	started time.Time
	tail    *tailBuffer
	done    chan struct{} // closed when the process has exited
	exitErr error         // written before done is closed; read only after
	// stopping is set before the reloader signals the process, so its exit
	// is not reported as a crash.
	stopping atomic.Bool
}

// startApp runs binary through the shim with sock as fd 3, in its own
// process group so that a Ctrl-C in the terminal reaches the reloader only,
// which then stops the app gracefully.
func startApp(shim, binary string, args []string, dir string, env []string, sock *os.File, stdout, stderr io.Writer) (*app, error) {
	a := &app{binary: binary, tail: newTailBuffer(32 << 10), done: make(chan struct{})}
	cmd := exec.Command(shim, append([]string{binary}, args...)...)
	cmd.Dir = dir
	cmd.Env = childEnv(env)
	cmd.Stdout = io.MultiWriter(stdout, a.tail)
	cmd.Stderr = io.MultiWriter(stderr, a.tail)
	// sock was made with os.NewFile from a non-blocking descriptor, so
	// os/exec's call to Fd does not switch the shared socket to blocking
	// mode under the running app's feet.
	cmd.ExtraFiles = []*os.File{sock}
	cmd.SysProcAttr = procAttr()
	// A grandchild keeping stdout open must not hold up Wait forever.
	cmd.WaitDelay = 2 * time.Second
	a.cmd = cmd
	a.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() {
		a.exitErr = cmd.Wait()
		close(a.done)
	}()
	return a, nil
}

func (a *app) pid() int { return a.cmd.Process.Pid }

func (a *app) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// exitStatus describes how the process ended, e.g. "exit status 2", or
// says it still runs. exitErr is read only once done is closed: the Wait
// goroutine writes it.
func (a *app) exitStatus() string {
	if !a.exited() {
		return "still running"
	}
	if a.exitErr == nil {
		return "exit status 0"
	}
	var exitErr *exec.ExitError
	if errors.As(a.exitErr, &exitErr) {
		return exitErr.ProcessState.String()
	}
	return a.exitErr.Error()
}

// stop sends SIGTERM to the app's process group and waits for it to drain,
// then kills what is left after grace.
func (a *app) stop(grace time.Duration) {
	a.stopping.Store(true)
	if a.exited() {
		return
	}
	_ = syscall.Kill(-a.pid(), syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(grace):
		_ = syscall.Kill(-a.pid(), syscall.SIGKILL)
		<-a.done
	}
}

// tailBuffer keeps the last bytes written to it: the crash output shown on
// the error page.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}
