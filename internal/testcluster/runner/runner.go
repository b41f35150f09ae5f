// Package runner is the one place the test cluster harness runs external
// commands: each is logged before it runs, with its outcome after, and a
// failure is returned wrapped with what was being attempted and the tail of
// the command's error output.
package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Runner runs commands and writes a line per command to Log.
type Runner struct {
	mu  sync.Mutex
	log io.Writer
}

// New returns a Runner logging to w (io.Discard when nil).
func New(w io.Writer) *Runner {
	if w == nil {
		w = io.Discard
	}
	return &Runner{log: w}
}

// SetLog redirects the command log, e.g. once the state directory exists.
func (r *Runner) SetLog(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = w
}

func (r *Runner) logf(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
}

// Cmd describes one external command.
type Cmd struct {
	What   string // what is being attempted, e.g. "import pause image"
	Name   string
	Args   []string
	Env    []string // added to the harness's environment
	Dir    string
	Stdin  io.Reader
	Stdout io.Writer // when nil, stdout is captured and returned
}

// Line is the command as a shell would show it, for logs and errors.
func (c Cmd) Line() string {
	parts := append([]string{c.Name}, c.Args...)
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t\"'$|&;<>()*?") {
			parts[i] = fmt.Sprintf("%q", p)
		}
	}
	return strings.Join(parts, " ")
}

func (c Cmd) build(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	// Give a command a moment to exit on its own when the context ends.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs a command and discards its output.
func (r *Runner) Run(ctx context.Context, what, name string, args ...string) error {
	_, err := r.Exec(ctx, Cmd{What: what, Name: name, Args: args})
	return err
}

// Output runs a command and returns its standard output.
func (r *Runner) Output(ctx context.Context, what, name string, args ...string) ([]byte, error) {
	return r.Exec(ctx, Cmd{What: what, Name: name, Args: args})
}

// Exec runs c to completion. Its stdout is returned unless c.Stdout is set.
func (r *Runner) Exec(ctx context.Context, c Cmd) ([]byte, error) {
	cmd := c.build(ctx)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	cmd.Stderr = &stderr
	start := time.Now()
	r.logf("run: %s", c.Line())
	err := cmd.Run()
	r.logf("  -> %s in %s", outcome(err), time.Since(start).Round(time.Millisecond))
	if err != nil {
		return stdout.Bytes(), wrap(c, err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// Pipe runs from | to, as `docker save x | ctr import -`.
func (r *Runner) Pipe(ctx context.Context, what string, from, to Cmd) error {
	pr, pw := io.Pipe()
	from.Stdout, to.Stdin = pw, pr
	from.What, to.What = what, what
	r.logf("pipe: %s | %s", from.Line(), to.Line())
	errc := make(chan error, 1)
	go func() {
		_, err := r.Exec(ctx, from)
		pw.CloseWithError(err)
		errc <- err
	}()
	_, toErr := r.Exec(ctx, to)
	pr.CloseWithError(errors.New("reader finished"))
	fromErr := <-errc
	if fromErr != nil {
		return fromErr
	}
	return toErr
}

// Start launches a long-running daemon in its own session, so it outlives the
// harness, with stdout and stderr appended to logPath. It returns the PID.
func (r *Runner) Start(c Cmd, logPath string) (int, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("%s: open log: %w", c.What, err)
	}
	defer f.Close()
	cmd := exec.Command(c.Name, c.Args...)
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	fmt.Fprintf(f, "\n=== %s starting: %s\n", time.Now().Format(time.RFC3339), c.Line())
	r.logf("start: %s (log %s)", c.Line(), logPath)
	if err := closeInheritedOnExec(); err != nil {
		return 0, fmt.Errorf("%s: %w", c.What, err)
	}
	if err := cmd.Start(); err != nil {
		return 0, wrap(c, err, nil)
	}
	pid := cmd.Process.Pid
	// Reap it if it dies while the harness still runs; otherwise init does.
	go func() { _ = cmd.Wait() }()
	r.logf("  -> pid %d", pid)
	return pid, nil
}

// closeInheritedOnExec marks every descriptor above stderr close-on-exec.
// Go opens its own files that way, but not the ones the harness inherited
// (e.g. the lock of `flock FILE make cluster-up`): a daemon would keep such
// a descriptor, and so hold that lock, for as long as the cluster runs.
func closeInheritedOnExec() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return "failed: " + err.Error()
}

func wrap(c Cmd, err error, stderr []byte) error {
	msg := fmt.Sprintf("%s: `%s`: %v", c.What, c.Line(), err)
	if tail := lastLines(stderr, 5); tail != "" {
		msg += "\n    " + strings.ReplaceAll(tail, "\n", "\n    ")
	}
	return &Error{msg: msg, err: err}
}

// Error is a failed command; it unwraps to the *exec.ExitError or start error.
type Error struct {
	msg string
	err error
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
