package devloop

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runner runs every external command of the dev loop: it says what it
// runs and wraps a failure with what was being attempted and the command's
// own last words.
type runner struct {
	out io.Writer // progress lines
	env []string  // extra environment, e.g. KUBECONFIG
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.out, "devloop: "+format+"\n", args...)
}

func (r *runner) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), r.env...)
	return cmd
}

// output runs a short command and returns its standard output.
func (r *runner) output(ctx context.Context, what, name string, args ...string) (string, error) {
	cmd := r.command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %s %s: %w%s", what, name, strings.Join(args, " "), err, lastWords(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// stream runs a long command (an image build) with its output on ours.
func (r *runner) stream(ctx context.Context, what, name string, args ...string) error {
	return r.streamEnv(ctx, nil, what, name, args...)
}

// streamEnv is stream with env added to the command's environment.
func (r *runner) streamEnv(ctx context.Context, env []string, what, name string, args ...string) error {
	r.progress("%s: %s", what, strings.Join(append(append(append([]string(nil), env...), name), args...), " "))
	cmd := r.command(ctx, name, args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %s: %w", what, name, err)
	}
	return nil
}

func lastWords(stderr []byte) string {
	s := strings.TrimSpace(string(stderr))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	return ": " + strings.TrimSpace(lines[len(lines)-1])
}

// process is a long-running helper (mount, port-forward, log stream) kept
// alive until stopped: when it exits on its own it is started again.
type process struct {
	name    string
	r       *runner
	argv    []string
	prefix  string                    // put before each output line
	onStart func(ctx context.Context) // called after each (re)start, or nil

	mu       sync.Mutex
	cmd      *exec.Cmd
	restarts int
	stopped  chan struct{}
}

func (p *process) start(ctx context.Context) {
	p.stopped = make(chan struct{})
	go p.loop(ctx)
}

func (p *process) loop(ctx context.Context) {
	defer close(p.stopped)
	backoff := 500 * time.Millisecond
	for {
		started := time.Now()
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		// A helper that ran for a while gets restarted at once.
		if time.Since(started) > 10*time.Second {
			backoff = 500 * time.Millisecond
		}
		p.mu.Lock()
		p.restarts++
		p.mu.Unlock()
		p.r.progress("%s exited (%v); restarting in %s", p.name, err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (p *process) runOnce(ctx context.Context) error {
	// Not CommandContext: on Ctrl-C the helper gets SIGTERM and time to
	// clean up (minikube mount unmounts), not SIGKILL.
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.r.env...)
	// Own process group: the terminal's Ctrl-C reaches the dev loop, which
	// then stops its helpers in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(p.r.out, "%s%s\n", p.prefix, sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	if p.onStart != nil {
		go p.onStart(ctx)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return <-done
		}
	}
}

// pid is the running helper's process ID, 0 when none runs.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// wait returns when the helper has stopped after ctx ended.
func (p *process) wait() {
	if p.stopped != nil {
		<-p.stopped
	}
}
