package command

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// OS is the Executor that runs real processes.
type OS struct{}

// stopGrace is how long a command has to exit on SIGTERM when its context
// ends, before it is killed.
const stopGrace = 5 * time.Second

func (OS) command(ctx context.Context, c Cmd, stdout, stderr io.Writer) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = c.ExtraFiles
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	if c.OwnGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	cmd.Cancel = func() error { return signal(cmd.Process.Pid, c.OwnGroup, syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	return cmd
}

// Run implements Executor.
func (o OS) Run(ctx context.Context, c Cmd, stdout, stderr io.Writer) error {
	return o.command(ctx, c, stdout, stderr).Run()
}

// Start implements Executor.
func (o OS) Start(ctx context.Context, c Cmd, stdout, stderr io.Writer) (Process, error) {
	cmd := o.command(ctx, c, stdout, stderr)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &osProcess{cmd: cmd, group: c.OwnGroup}, nil
}

// Daemon implements Executor.
func (OS) Daemon(c Cmd, log *os.File) (int, error) {
	cmd := exec.Command(c.Name, c.Args...)
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := closeInheritedOnExec(); err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	// Reap it if it dies while the caller still runs; otherwise init does.
	go func() { _ = cmd.Wait() }()
	return cmd.Process.Pid, nil
}

type osProcess struct {
	cmd   *exec.Cmd
	group bool
}

func (p *osProcess) Pid() int { return p.cmd.Process.Pid }

func (p *osProcess) Signal(s os.Signal) error {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return p.cmd.Process.Signal(s)
	}
	return signal(p.cmd.Process.Pid, p.group, sig)
}

func (p *osProcess) Wait() error { return p.cmd.Wait() }

func signal(pid int, group bool, sig syscall.Signal) error {
	if group {
		return syscall.Kill(-pid, sig)
	}
	return syscall.Kill(pid, sig)
}

// closeInheritedOnExec marks every descriptor above stderr close-on-exec.
// Go opens its own files that way, but not the ones the caller inherited
// (e.g. the lock of `flock FILE make cluster-up`): a daemon would keep such
// a descriptor, and so hold that lock, for as long as it runs.
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
