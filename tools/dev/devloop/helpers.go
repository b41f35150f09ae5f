package devloop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"scalable-app/tools/internal/command"
)

// startHelpers starts the port-forward and the log stream; both end at
// cleanup.
func (l *loop) startHelpers(ctx context.Context) error {
	hctx, cancel := context.WithCancel(ctx)
	url := fmt.Sprintf("http://localhost:%d", l.o.LocalPort)
	forward := l.helper("port-forward", "[port-forward] ",
		l.k.Command("port-forward", "deployment/"+Deployment, fmt.Sprintf("%d:%d", l.o.LocalPort, PodPort), "-n", Namespace))
	forward.onStart = func(ctx context.Context) {
		if waitHTTP(ctx, url, time.Minute) {
			l.progress("ready: %s serves the pod; edit and save any file under %s (Ctrl-C stops)", url, l.dir)
		}
	}
	logs := l.helper("logs", "[pod] ",
		l.k.Command("logs", "--follow", "--tail=20", "deployment/"+Deployment, "-n", Namespace))
	stop := func(context.Context) {
		l.progress("stopping the port-forward and the logs")
		cancel()
		forward.wait()
		logs.wait()
	}
	l.undo = append(l.undo, stop)
	if err := forward.start(hctx); err != nil {
		return err
	}
	return logs.start(hctx)
}

// helper is a long-running child (mount, port-forward, log stream) kept
// alive until its context ends: when it exits on its own it is started
// again. It runs in a process group of its own, so that the terminal's
// Ctrl-C or hang-up reaches the dev loop only, which then stops it.
type helper struct {
	name    string
	run     *command.Runner
	cmd     command.Cmd
	out     func(format string, args ...any)
	onStart func(ctx context.Context) // after each (re)start, or nil
	stopped chan struct{}
}

func (l *loop) helper(name, prefix string, c command.Cmd) *helper {
	w := &prefixWriter{prefix: prefix, w: l.o.Out}
	c.What, c.Stdout, c.Stderr, c.OwnGroup = name, w, w, true
	return &helper{name: name, run: l.run, cmd: c, out: l.progress}
}

// start starts the helper and keeps it running in the background until
// ctx ends. Only the first start's failure (a missing program) is returned.
func (h *helper) start(ctx context.Context) error {
	p, err := h.run.Start(ctx, h.cmd)
	if err != nil {
		return err
	}
	h.stopped = make(chan struct{})
	go h.keep(ctx, p)
	return nil
}

// keep waits for p and starts the helper again each time it exits on its
// own. When ctx ends the runner sends the helper's group SIGTERM (minikube
// mount unmounts) and, later, SIGKILL.
func (h *helper) keep(ctx context.Context, p command.Process) {
	defer close(h.stopped)
	backoff := 500 * time.Millisecond
	for {
		started := time.Now()
		var err error
		if p != nil {
			if h.onStart != nil {
				go h.onStart(ctx)
			}
			err = p.Wait()
		}
		if ctx.Err() != nil {
			return
		}
		// A helper that ran for a while is restarted at once.
		if time.Since(started) > 10*time.Second {
			backoff = 500 * time.Millisecond
		}
		h.out("%s exited (%v); restarting in %s", h.name, err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		if p, err = h.run.Start(ctx, h.cmd); err != nil {
			p = nil
			h.out("%v", err)
		}
	}
}

// wait returns when the helper has stopped after its context ended.
func (h *helper) wait() {
	if h.stopped != nil {
		<-h.stopped
	}
}

// prefixWriter writes each complete line with a prefix; stdout and stderr
// of a child share one.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Console is the dev loop's output: stdout until a write to it fails (the
// terminal closed, `make dev | tee log` with tee gone), stderr after that.
// It never returns an error, so that neither the cleanup nor the copying of
// a child's output stops on a broken stdout.
func Console(stdout, stderr io.Writer) io.Writer {
	return &console{w: stdout, fallback: stderr}
}

type console struct {
	mu       sync.Mutex
	w        io.Writer
	fallback io.Writer
}

func (c *console) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.w.Write(b); err != nil && c.fallback != nil {
		c.w, c.fallback = c.fallback, nil
		_, _ = c.w.Write(b)
	}
	return len(b), nil
}

// waitHTTP polls url until it answers at all (a 500 error page counts: the
// port-forward works) or the time is up.
func waitHTTP(ctx context.Context, url string, limit time.Duration) bool {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
	return false
}
