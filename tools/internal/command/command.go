// Package command is the one way the tools run external commands, in the
// style of kind's exec package: every command is logged before it runs and
// with its outcome after, and a failure comes back wrapped with what was
// being attempted, the command line and the tail of its error output.
//
// A Runner is built once by a main (or a test) and passed down. It does its
// logging and error wrapping itself and leaves the process work to an
// Executor: OS runs real processes, Fake (fake.go) records the commands and
// answers them from a script, so orchestration can be unit-tested without
// root, a cluster or the programs themselves.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Cmd describes one external command.
type Cmd struct {
	What   string // what is being attempted, e.g. "import pause image"
	Name   string
	Args   []string
	Env    []string // added to the caller's environment
	Dir    string
	Stdin  io.Reader
	Stdout io.Writer // Run: when nil, stdout is captured and returned
	Stderr io.Writer // also receives the error output, which Run keeps a tail of

	// ExtraFiles become fd 3, 4, ... of the process (socket activation).
	ExtraFiles []*os.File
	// OwnGroup starts the process in a process group of its own, so a
	// Ctrl-C in the terminal reaches the caller only; Process.Signal then
	// signals the whole group.
	OwnGroup bool
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

// Process is a command started in the background.
type Process interface {
	Pid() int
	// Signal signals the process (its group, with Cmd.OwnGroup).
	Signal(os.Signal) error
	// Wait waits for the process to exit and releases it.
	Wait() error
}

// Executor does the process work behind a Runner.
type Executor interface {
	// Run runs c to completion with its output going to stdout and stderr.
	Run(ctx context.Context, c Cmd, stdout, stderr io.Writer) error
	// Start starts c and returns at once. When ctx ends, the process is
	// sent SIGTERM and, if it has not exited 5 s later, killed.
	Start(ctx context.Context, c Cmd, stdout, stderr io.Writer) (Process, error)
	// Daemon starts c detached, in a session of its own so that it outlives
	// the caller, with stdout and stderr appended to log.
	Daemon(c Cmd, log *os.File) (pid int, err error)
}

// Runner runs commands through an Executor and logs each one.
type Runner struct {
	exec Executor
	mu   sync.Mutex
	log  io.Writer
}

// New returns a Runner that runs commands with exec and logs them to log
// (io.Discard when nil).
func New(exec Executor, log io.Writer) *Runner {
	if log == nil {
		log = io.Discard
	}
	return &Runner{exec: exec, log: log}
}

// SetLog redirects the command log, e.g. once a state directory exists.
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
	c = shareOutput(c)
	var stdout bytes.Buffer
	out := io.Writer(&stdout)
	if c.Stdout != nil {
		out = c.Stdout
	}
	stderr := &Tail{Max: 8 << 10}
	errOut := io.Writer(stderr)
	if c.Stderr != nil {
		errOut = io.MultiWriter(stderr, c.Stderr)
	}
	start := time.Now()
	r.logf("run: %s", c.Line())
	err := r.exec.Run(ctx, c, out, errOut)
	r.logf("  -> %s in %s", outcome(err), time.Since(start).Round(time.Millisecond))
	if err != nil {
		return stdout.Bytes(), wrap(c, err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// Start starts c in the background; it ends with ctx. Its output goes to
// c.Stdout and c.Stderr (discarded when nil).
func (r *Runner) Start(ctx context.Context, c Cmd) (Process, error) {
	c = shareOutput(c)
	stdout, stderr := orDiscard(c.Stdout), orDiscard(c.Stderr)
	r.logf("start: %s", c.Line())
	p, err := r.exec.Start(ctx, c, stdout, stderr)
	if err != nil {
		r.logf("  -> %s", outcome(err))
		return nil, wrap(c, err, nil)
	}
	r.logf("  -> pid %d", p.Pid())
	return p, nil
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

// Daemon launches a long-running daemon in its own session, so it outlives
// the caller, with stdout and stderr appended to logPath. It returns the PID.
func (r *Runner) Daemon(c Cmd, logPath string) (int, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("%s: open log: %w", c.What, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "\n=== %s starting: %s\n", time.Now().Format(time.RFC3339), c.Line())
	r.logf("start: %s (log %s)", c.Line(), logPath)
	pid, err := r.exec.Daemon(c, f)
	if err != nil {
		r.logf("  -> %s", outcome(err))
		return 0, wrap(c, err, nil)
	}
	r.logf("  -> pid %d", pid)
	return pid, nil
}

// shareOutput makes one writer given as both Stdout and Stderr safe: the
// process's two streams are copied into it by two goroutines at once.
func shareOutput(c Cmd) Cmd {
	if c.Stdout != nil && c.Stdout == c.Stderr {
		w := &lockedWriter{w: c.Stdout}
		c.Stdout, c.Stderr = w, w
	}
	return c
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return "failed: " + err.Error()
}

func wrap(c Cmd, err error, stderr []byte) error {
	msg := fmt.Sprintf("%s: `%s`: %v", c.What, c.Line(), err)
	if tail := LastLines(string(stderr), 5); tail != "" {
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
