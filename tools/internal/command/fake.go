package command

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Fake is an Executor for tests: it runs nothing, records every command
// and answers each from Respond. The zero value answers every command with
// success and no output.
type Fake struct {
	// Respond answers a command run to completion, or started: its
	// stdout, and its error (use &exec.ExitError{} or any error for a
	// failure). Nil means success with no output.
	Respond func(c Cmd) (stdout string, err error)

	mu       sync.Mutex
	calls    []Cmd
	nextPid  int
	started  map[int]*FakeProcess
	sigCalls []string
}

// Calls are the commands seen so far, in order.
func (f *Fake) Calls() []Cmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Cmd(nil), f.calls...)
}

// Lines are Calls as command lines, for comparing with an expected order.
func (f *Fake) Lines() []string {
	var lines []string
	for _, c := range f.Calls() {
		lines = append(lines, c.Line())
	}
	return lines
}

// Find is the first call whose line starts with prefix, or false.
func (f *Fake) Find(prefix string) (Cmd, bool) {
	for _, c := range f.Calls() {
		if strings.HasPrefix(c.Line(), prefix) {
			return c, true
		}
	}
	return Cmd{}, false
}

func (f *Fake) record(c Cmd) (string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	respond := f.Respond
	f.mu.Unlock()
	if respond == nil {
		return "", nil
	}
	return respond(c)
}

// Run implements Executor.
func (f *Fake) Run(ctx context.Context, c Cmd, stdout, stderr io.Writer) error {
	if c.Stdin != nil {
		// Consume it, as a real command would, so a producer piped in ends.
		_, _ = io.Copy(io.Discard, c.Stdin)
	}
	out, err := f.record(c)
	if out != "" {
		_, _ = io.WriteString(stdout, out)
	}
	if err != nil {
		_, _ = io.WriteString(stderr, err.Error()+"\n")
	}
	return err
}

// Start implements Executor. The process runs until it is signalled with
// SIGTERM, SIGINT or SIGKILL, or ctx ends; a Respond error fails the start.
func (f *Fake) Start(ctx context.Context, c Cmd, stdout, stderr io.Writer) (Process, error) {
	out, err := f.record(c)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.nextPid++
	p := &FakeProcess{pid: 1000 + f.nextPid, Cmd: c, exited: make(chan struct{})}
	if f.started == nil {
		f.started = map[int]*FakeProcess{}
	}
	f.started[p.pid] = p
	f.mu.Unlock()
	// A real process writes while the caller reads: never block Start.
	if out != "" {
		go func() { _, _ = io.WriteString(stdout, out) }()
	}
	go func() {
		select {
		case <-ctx.Done():
			p.Exit(ctx.Err())
		case <-p.exited:
		}
	}()
	return p, nil
}

// Daemon implements Executor.
func (f *Fake) Daemon(c Cmd, log *os.File) (int, error) {
	if _, err := f.record(c); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextPid++
	return 1000 + f.nextPid, nil
}

// Running are the started processes that have not exited.
func (f *Fake) Running() []*FakeProcess {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*FakeProcess
	for _, p := range f.started {
		if !p.Exited() {
			out = append(out, p)
		}
	}
	return out
}

// FakeProcess is a process started by Fake.
type FakeProcess struct {
	Cmd     Cmd
	pid     int
	once    sync.Once
	exited  chan struct{}
	mu      sync.Mutex
	err     error
	signals []os.Signal
}

func (p *FakeProcess) Pid() int { return p.pid }

// Signal records s; SIGTERM, SIGINT and SIGKILL end the process.
func (p *FakeProcess) Signal(s os.Signal) error {
	if p.Exited() {
		return os.ErrProcessDone
	}
	p.mu.Lock()
	p.signals = append(p.signals, s)
	p.mu.Unlock()
	switch s {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGKILL:
		p.Exit(errors.New("signal: " + s.String()))
	}
	return nil
}

// Signals are the signals received.
func (p *FakeProcess) Signals() []os.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]os.Signal(nil), p.signals...)
}

// Exit ends the process with err (nil: exit status 0).
func (p *FakeProcess) Exit(err error) {
	p.once.Do(func() {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.exited)
	})
}

// Exited reports whether the process has ended.
func (p *FakeProcess) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *FakeProcess) Wait() error {
	<-p.exited
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
