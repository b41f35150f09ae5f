package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rawLoad is clients that never retry, as a non-Go client or a
// non-idempotent request would not: hand-written HTTP/1.1 on net.Conn, so a
// request lost by the server shows as a failure here. While routing holds,
// clients open new connections, as a load balancer does before it drops the
// endpoint; keep-alive clients keep using the connection they have until a
// response says "Connection: close".
type rawLoad struct {
	addr    string
	routing atomic.Bool
	stop    atomic.Bool
	// lateWrite, when set, is when the fresh-connection clients' last
	// connections, opened as routing ends, send their request: after the
	// server began shutting down, so they are accepted but unread then.
	lateWrite atomic.Int64

	answered, late atomic.Int64
	mu             sync.Mutex
	failures       []string
	wg             sync.WaitGroup
}

const (
	rawGET  = "GET / HTTP/1.1\r\nHost: test\r\n\r\n"
	rawPOST = "POST / HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
)

// startRawLoad starts 16 keep-alive GET clients, one keep-alive POST client
// and 4 clients opening a fresh connection per request.
func startRawLoad(addr string) *rawLoad {
	l := &rawLoad{addr: addr}
	l.routing.Store(true)
	for i := 0; i < 16; i++ {
		l.start(func() { l.keepAlive("GET", rawGET, 200) })
	}
	l.start(func() { l.keepAlive("POST", rawPOST, 405) })
	for i := 0; i < 4; i++ {
		l.start(l.fresh)
	}
	return l
}

func (l *rawLoad) start(f func()) {
	l.wg.Add(1)
	go func() { defer l.wg.Done(); f() }()
}

func (l *rawLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
}

// exchange sends one request and reads its whole response; it reports
// whether the server asked to close the connection.
func (l *rawLoad) exchange(conn net.Conn, br *bufio.Reader, what, raw string, status int) (closed, ok bool) {
	if _, err := io.WriteString(conn, raw); err != nil {
		l.fail("%s: write: %v", what, err)
		return true, false
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		l.fail("%s: sent, no response: %v", what, err)
		return true, false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != status {
		l.fail("%s: status %d, body %v", what, resp.StatusCode, err)
		return true, false
	}
	l.answered.Add(1)
	return resp.Close, true
}

func (l *rawLoad) dial(what string) (net.Conn, bool) {
	conn, err := net.Dial("tcp", l.addr)
	if err != nil {
		l.fail("%s: dial: %v", what, err)
		return nil, false
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn, true
}

func (l *rawLoad) keepAlive(method, raw string, status int) {
	for l.routing.Load() && !l.stop.Load() {
		conn, ok := l.dial("keep-alive " + method)
		if !ok {
			return
		}
		br := bufio.NewReader(conn)
		for n := 1; ; n++ {
			closed, ok := l.exchange(conn, br, fmt.Sprintf("keep-alive %s, request %d on its connection", method, n), raw, status)
			if !ok || closed || l.stop.Load() {
				break
			}
			time.Sleep(time.Duration(1+rand.IntN(3)) * time.Millisecond)
		}
		conn.Close()
	}
}

func (l *rawLoad) fresh() {
	for !l.stop.Load() {
		late := !l.routing.Load()
		conn, ok := l.dial("fresh")
		if !ok {
			return
		}
		if late {
			time.Sleep(time.Until(time.Unix(0, l.lateWrite.Load())))
		} else {
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		}
		_, ok = l.exchange(conn, bufio.NewReader(conn), fmt.Sprintf("fresh (late %v)", late), rawGET, 200)
		conn.Close()
		if late {
			if ok {
				l.late.Add(1)
			}
			return
		}
	}
}

// finish stops the clients and reports every failure.
func (l *rawLoad) finish(t *testing.T) {
	t.Helper()
	l.stop.Store(true)
	l.routing.Store(false)
	l.wg.Wait()
	t.Logf("%d requests answered", l.answered.Load())
	for i, f := range l.failures {
		if i == 10 {
			t.Errorf("... %d failures in all", len(l.failures))
			break
		}
		t.Errorf("lost: %s", f)
	}
}

// TestNoRequestLostAtShutdown: SIGTERM (a cancelled context) in the middle
// of a load that never retries, on an ordinary socket. Keep-alive clients
// are answered through the drain, each told to close after a response;
// connections accepted but unread when shutdown begins are answered too.
func TestNoRequestLostAtShutdown(t *testing.T) {
	const drain = time.Second
	s := startServer(t, map[string]string{"ACCESS_LOG": "false"}, "--drain-delay", drain.String())
	l := startRawLoad(s.addr)
	time.Sleep(300 * time.Millisecond)

	stopped := time.Now()
	l.lateWrite.Store(stopped.Add(drain + 150*time.Millisecond).UnixNano())
	s.stop()
	// The load balancer drops the endpoint well within the drain delay.
	time.Sleep(drain / 2)
	l.routing.Store(false)

	var err error
	select {
	case err = <-s.done:
		s.done <- nil
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return")
	}
	l.finish(t)
	if err != nil {
		t.Fatalf("run = %v, want nil", err)
	}
	if n := l.late.Load(); n != 4 {
		t.Errorf("%d of 4 connections accepted before shutdown and read after it were answered", n)
	}
}

// TestNoRequestLostAtShutdownInheritedSocket: the same on a socket passed
// by the systemd protocol, as the hot reloader does: a successor shares the
// socket, the old process gets SIGTERM under load and exits 0 without
// losing a request.
func TestNoRequestLostAtShutdownInheritedSocket(t *testing.T) {
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
	start := func() *process {
		cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, binary, "--drain-delay", "1s", "--access-log=false")
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
		cmd.ExtraFiles = []*os.File{f}
		return startProcess(t, cmd)
	}

	old := start()
	l := startRawLoad(ln.Addr().String())
	time.Sleep(300 * time.Millisecond)
	successor := start() // overlaps the old one, as in the reloader
	old.cmd.Process.Signal(syscall.SIGTERM)
	if code, took := old.wait(t, 15*time.Second); code != 0 {
		t.Errorf("old process: exit status %d after %s, want 0", code, took)
	}
	time.Sleep(200 * time.Millisecond)
	l.finish(t)
	successor.cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := successor.wait(t, 15*time.Second); code != 0 {
		t.Errorf("successor: exit status %d, want 0", code)
	}
}

// TestSecondSignalFlushesLogs: the exit at once on a second signal still
// writes the lines buffered (the last one here is at most a few
// milliseconds old, well within the 100 ms flush interval).
func TestSecondSignalFlushesLogs(t *testing.T) {
	cmd := exec.Command(binary, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--drain-delay", "30s")
	var stdout syncBuffer
	stdoutPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	copied := make(chan struct{})
	go func() { io.Copy(&stdout, stdoutPipe); close(copied) }()
	waitFor(t, "start-up line", func() bool { return startupAddr(stdout.String()) != "" })
	base := "http://" + startupAddr(stdout.String())

	cmd.Process.Signal(syscall.SIGINT)
	waitFor(t, "/readyz to fail", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	get(t, base+"/?last=1")
	cmd.Process.Signal(syscall.SIGINT)
	<-copied
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code == 0 {
		t.Fatalf("exit status 0 after a second signal (%v), want non-zero", err)
	}
	if !strings.Contains(stdout.String(), `"path":"/","status":200`) || !strings.Contains(stdout.String(), "shutdown started") {
		t.Fatalf("lines lost at the exit on a second signal; stdout:\n%s", stdout.String())
	}
}
