package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"scalable-app/tools/internal/command"
)

// shimEnv marks a process started as the exec shim (see ExecIfShim); its
// value is the reloader's PID.
const shimEnv = "HOTRELOAD_EXEC_SHIM"

// ExecIfShim must be the first call in the main function of any program that
// runs a reloader (and in TestMain of its tests). The socket-activation
// protocol wants LISTEN_PID to be the app's own PID, which a parent cannot
// know before it forks; so the reloader starts its own executable with
// shimEnv set, and that process, here, sets LISTEN_PID to its PID and execs
// the app, which keeps the PID. It returns when the process is not a shim.
func ExecIfShim() {
	parent := os.Getenv(shimEnv)
	if parent == "" {
		return
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "hotreload shim: no program to run")
		os.Exit(127)
	}
	// The parent-death signal belongs to this thread, and the exec below
	// keeps only the thread that calls it.
	runtime.LockOSThread()
	// If the reloader is killed outright, the app gets a SIGTERM instead of
	// serving on as an orphan. A reloader gone before that was set up is no
	// longer this process's parent.
	if err := dieWithParent(); err != nil {
		fmt.Fprintf(os.Stderr, "hotreload shim: parent-death signal: %v\n", err)
	}
	if strconv.Itoa(os.Getppid()) != parent {
		fmt.Fprintln(os.Stderr, "hotreload shim: the reloader has exited")
		os.Exit(1)
	}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		// LISTEN_PID may be the reloader's own, from its supervisor.
		if !strings.HasPrefix(kv, shimEnv+"=") && !strings.HasPrefix(kv, "LISTEN_PID=") {
			env = append(env, kv)
		}
	}
	env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()))
	err := syscall.Exec(os.Args[1], os.Args[1:], env)
	fmt.Fprintf(os.Stderr, "hotreload shim: exec %s: %v\n", os.Args[1], err)
	os.Exit(127)
}

// childEnv is what the app's environment adds to the reloader's: env
// without variables meant for a supervisor, and the ones that hand the
// socket on (later values win over the reloader's own).
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
	return append(out, shimEnv+"="+strconv.Itoa(os.Getpid()), "LISTEN_FDS=1", "LISTEN_FDNAMES=http")
}

// app is one run of the built program.
type app struct {
	binary  string
	proc    command.Process
	started time.Time
	tail    *command.Tail // the last output, for the crash page
	done    chan struct{} // closed when the process has exited
	exitErr error         // written before done is closed; read only after
	// stopping is set before the reloader signals the process, so its exit
	// is not reported as a crash.
	stopping atomic.Bool
}

// startApp runs binary through the shim with the socket as fd 3, in its own
// process group so that a Ctrl-C in the terminal reaches the reloader only,
// which then stops the app gracefully.
func (r *reloader) startApp(ctx context.Context, binary string) (*app, error) {
	a := &app{binary: binary, tail: &command.Tail{Max: 32 << 10}, done: make(chan struct{}), started: time.Now()}
	// Not ended by ctx: the reloader stops its apps itself, giving each
	// StopTimeout to drain.
	p, err := r.cfg.Runner.Start(context.WithoutCancel(ctx), command.Cmd{
		What:   "start the app",
		Name:   r.cfg.Shim,
		Args:   append([]string{binary}, r.cfg.AppArgs...),
		Dir:    r.cfg.Dir,
		Env:    childEnv(r.cfg.Env),
		Stdout: io.MultiWriter(a.tail, r.cfg.Stdout),
		Stderr: io.MultiWriter(a.tail, r.cfg.Stderr),
		// sock was made with os.NewFile from a non-blocking descriptor, so
		// os/exec's call to Fd does not switch the shared socket to
		// blocking mode under the running app's feet.
		ExtraFiles: []*os.File{r.sock},
		OwnGroup:   true,
	})
	if err != nil {
		return nil, err
	}
	a.proc = p
	go func() {
		a.exitErr = p.Wait()
		close(a.done)
	}()
	return a, nil
}

func (a *app) pid() int { return a.proc.Pid() }

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
	_ = a.proc.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(grace):
		_ = a.proc.Signal(syscall.SIGKILL)
		<-a.done
	}
}
