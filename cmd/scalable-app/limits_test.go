package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// metricValue reads one sample from the metrics port, -1 when absent.
func metricValue(t *testing.T, metricsBase, series string) float64 {
	t.Helper()
	_, _, body := get(t, metricsBase+"/metrics")
	m := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}

// rawGet sends GET on conn and reads the whole response.
func rawGet(conn net.Conn, br *bufio.Reader, path string) error {
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// TestMaxHeaderBytesIsExact: request line and headers of exactly the limit
// are served, one byte more gets 431 (net/http alone would admit 4 KiB more).
func TestMaxHeaderBytesIsExact(t *testing.T) {
	for _, limit := range []int{8192, 16384} {
		s := startServer(t, map[string]string{"MAX_HEADER_BYTES": strconv.Itoa(limit)})
		for n, want := range map[int]string{limit: "HTTP/1.1 200", limit + 1: "HTTP/1.1 431"} {
			const pre = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "
			raw := pre + strings.Repeat("a", n-len(pre)-4) + "\r\n\r\n"
			if got := rawRequest(t, s.addr, raw); !strings.HasPrefix(got, want) {
				t.Errorf("MAX_HEADER_BYTES=%d, %d bytes of headers: %q, want %s", limit, len(raw), got, want)
			}
		}
	}
}

// TestConnectionCapAndTimeoutsAreCounted: at --max-conns the oldest idle
// connections are closed to admit new ones, a new client is answered, and
// /metrics counts that and a connection cut by the read-header timeout.
func TestConnectionCapAndTimeoutsAreCounted(t *testing.T) {
	s := startServer(t, nil, "--max-conns", "16", "--read-header-timeout", "300ms")
	// startServer's probe leaves a keep-alive connection, which the client
	// may pool only after its last read: close it until the server sees it
	// gone, or it would be the oldest idle one and the cap would close it too.
	waitFor(t, "the probe's connection to be gone", func() bool {
		http.DefaultClient.CloseIdleConnections()
		return metricValue(t, s.metricsBase, `http_connections{state="idle"}`) <= 0 // -1: no such series yet
	})
	if v := metricValue(t, s.metricsBase, `http_connections_closed_total{reason="timeout"}`); v != 0 {
		t.Fatalf("timeout closes before any = %v", v)
	}

	silent, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent connection: %v, want EOF from the read-header timeout", err)
	}
	waitFor(t, "the timeout counted", func() bool {
		return metricValue(t, s.metricsBase, `http_connections_closed_total{reason="timeout"}`) == 1
	})

	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < 24; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := rawGet(c, bufio.NewReader(c), "/"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		idle = append(idle, c)
		// net/http marks a connection idle just after the client has its
		// response: wait for that, so the idle order is the dial order.
		waitFor(t, "the connection to turn idle", func() bool {
			return metricValue(t, s.metricsBase, `http_connections{state="active"}`) == 0 &&
				metricValue(t, s.metricsBase, `http_connections{state="new"}`) == 0
		})
	}
	// The first 8 were the longest idle: closed to admit the last 8.
	for i, c := range idle[:8] {
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("idle connection %d still open at the cap (%v)", i, err)
		}
	}
	if err := rawGet(idle[23], bufio.NewReader(idle[23]), "/healthz"); err != nil {
		t.Errorf("newest connection at the cap: %v", err)
	}
	// At least the 8 above; a connection of the test's own HTTP client that
	// the server still holds may be closed by the cap too.
	if v := metricValue(t, s.metricsBase, `http_connections_closed_total{reason="cap"}`); v < 8 {
		t.Errorf("closed by the cap = %v, want at least 8", v)
	}
	if v := metricValue(t, s.metricsBase, `http_connections{state="idle"}`); v != 16 {
		t.Errorf("idle connections = %v, want 16 (the cap)", v)
	}
}

// TestBlockedStdoutNeverBlocksRequests: with stdout a pipe that nobody
// reads (a stuck log collector), every request is answered, /healthz
// promptly, and /metrics says how many log lines were dropped.
func TestBlockedStdoutNeverBlocksRequests(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(binary, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0")
	cmd.Stdout, cmd.Stderr = w, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Read the start-up line, then never again.
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base, metricsBase := "http://"+startupAddr(line), "http://"+startupField(line, "metrics_addr")

	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, 3000)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				resp, err := client.Get(base + "/")
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a request with stdout blocked: %v", err)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetDeadline(start.Add(5 * time.Second))
	if err := rawGet(conn, bufio.NewReader(conn), "/healthz"); err != nil {
		t.Fatalf("/healthz with stdout blocked: %v", err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("/healthz took %s with stdout blocked, want under 100ms", took)
	}
	dropped := metricValue(t, metricsBase, "log_lines_dropped_total")
	t.Logf("3000 requests answered, %v log lines dropped", dropped)
	if dropped <= 0 {
		t.Errorf("log_lines_dropped_total = %v, want above 0", dropped)
	}
}

// TestIdleFloodStaysWithinMemory: 6000 idle keep-alive connections against
// the real program under GOMEMLIMIT=64MiB, the pod's limit: the default cap
// closes the oldest, RSS stays under 64 MiB, a new client is answered.
func TestIdleFloodStaysWithinMemory(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 7000 {
		lim.Cur = min(lim.Max, 20000)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 7000 {
			t.Skipf("cannot have 7000 open files (limit %d): %v", lim.Cur, err)
		}
	}
	cmd := exec.Command(binary, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--access-log=false")
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=64MiB")
	var stdout syncBuffer
	p := startProcess(t, cmd, &stdout)
	metricsBase := "http://" + startupField(stdout.String(), "metrics_addr")

	const flood = 6000
	conns := make([]net.Conn, flood)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, flood)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < flood; i += 8 {
				c, err := net.Dial("tcp", p.addr)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if err := rawGet(c, bufio.NewReader(c), "/"); err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if err := rawGet(conn, bufio.NewReader(conn), "/healthz"); err != nil {
		t.Fatalf("a new client after %d idle connections: %v", flood, err)
	}
	rss, peak := procStatusKiB(t, p.cmd.Process.Pid, "VmRSS"), procStatusKiB(t, p.cmd.Process.Pid, "VmHWM")
	capped := metricValue(t, metricsBase, `http_connections_closed_total{reason="cap"}`)
	open := metricValue(t, metricsBase, `http_connections{state="idle"}`)
	t.Logf("%d idle connections: RSS %d KiB (peak %d KiB), %v closed by the cap, %v idle open, cap %s",
		flood, rss, peak, capped, open, startupField(stdout.String(), "max_conns"))
	if peak >= 64<<10 {
		t.Errorf("peak RSS %d KiB, want under 64 MiB", peak)
	}
	if capped <= 0 {
		t.Errorf("closed by the cap = %v, want above 0", capped)
	}
}

func procStatusKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func TestDefaultMaxConnsFollowsGOMEMLIMIT(t *testing.T) {
	for limit, want := range map[string]int{"64MiB": 1024, "67108864": 1024, "1GiB": 16384, "1MiB": 64} {
		got := defaultMaxConns(func(k string) string { return map[string]string{"GOMEMLIMIT": limit}[k] })
		if _, err := os.Stat(cgroupMemoryV2); err != nil && got != want {
			t.Errorf("GOMEMLIMIT=%s: cap %d, want %d", limit, got, want)
		}
		if got > want {
			t.Errorf("GOMEMLIMIT=%s: cap %d, above %d", limit, got, want)
		}
	}
	for _, bad := range []string{"", "off", "lots", "-5MiB"} {
		if n, ok := parseMemLimit(bad); ok {
			t.Errorf("GOMEMLIMIT=%q read as %d", bad, n)
		}
	}
}
