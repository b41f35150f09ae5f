// Package httpbench measures HTTP servers under the same load: requests per
// second and latency percentiles from wrk, and the server's resident memory
// idle and at peak, read from /proc.
//
// On a small machine the load generator and the server fight for CPU, so
// the server is pinned to one CPU and wrk to another when there are two.
package httpbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Target is a server to measure.
type Target struct {
	Name string
	// Start runs the server on port and returns its process; the server
	// must answer GET / with 200.
	Start func(ctx context.Context, port int) (*exec.Cmd, error)
}

// Result is one measurement.
type Result struct {
	Name        string
	RPS         float64
	P50, P99    time.Duration
	IdleRSSKiB  int
	PeakRSSKiB  int
	Non2xx      int
	SocketError int
}

// Load configures wrk.
type Load struct {
	Duration    time.Duration
	Connections int
	Threads     int
}

// Measure starts the target, waits until it serves, records its idle RSS,
// runs wrk against it and records the peak RSS of the process tree.
func Measure(ctx context.Context, t Target, load Load, log io.Writer) (Result, error) {
	port, err := freePort()
	if err != nil {
		return Result{}, err
	}
	cmd, err := t.Start(ctx, port)
	if err != nil {
		return Result{}, fmt.Errorf("start %s: %w", t.Name, err)
	}
	defer stop(cmd)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if err := waitServing(ctx, url, 30*time.Second); err != nil {
		return Result{}, fmt.Errorf("%s: %w", t.Name, err)
	}
	// Let start-up garbage settle before reading the idle footprint.
	time.Sleep(500 * time.Millisecond)
	res := Result{Name: t.Name, IdleRSSKiB: treeRSS(cmd.Process.Pid, "VmRSS")}

	args := []string{"-t", strconv.Itoa(load.Threads), "-c", strconv.Itoa(load.Connections),
		"-d", fmt.Sprintf("%ds", int(load.Duration.Seconds())), "--latency", url}
	if cpus := runtime.NumCPU(); cpus >= 2 {
		args = append([]string{"-c", strconv.Itoa(cpus - 1), "wrk"}, args...)
	} else {
		args = append([]string{"-c", "0", "wrk"}, args...)
	}
	fmt.Fprintf(log, "  %s: taskset %s\n", t.Name, strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, "taskset", args...).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("wrk against %s: %w: %s", t.Name, err, out)
	}
	if err := parseWrk(string(out), &res); err != nil {
		return Result{}, fmt.Errorf("wrk output for %s: %w\n%s", t.Name, err, out)
	}
	res.PeakRSSKiB = treeRSS(cmd.Process.Pid, "VmHWM")
	return res, nil
}

// PinnedCommand runs name on CPU 0, away from the load generator.
func PinnedCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "taskset", append([]string{"-c", "0", name}, args...)...)
	// Its own process group, so stop reaches the workers of gunicorn too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitServing(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from %s within %s (last error: %v)", url, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// treeRSS sums a /proc/PID/status memory field (VmRSS or VmHWM, in KiB)
// over pid and its descendants: gunicorn serves from worker processes.
func treeRSS(pid int, field string) int {
	total := 0
	for _, p := range descendants(pid) {
		total += statusKiB(p, field)
	}
	return total
}

func descendants(root int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name in parentheses may hold spaces: fields start after it.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 {
			ppid, _ := strconv.Atoi(fields[1])
			parent[pid] = ppid
		}
	}
	out := []int{root}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if slices.Contains(out, pp) && !slices.Contains(out, pid) {
				out = append(out, pid)
				changed = true
			}
		}
	}
	sort.Ints(out)
	return out
}

func statusKiB(pid int, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}

var (
	rpsLine      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	percentile   = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	non2xxLine   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	socketErrors = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(out string, r *Result) error {
	m := rpsLine.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("no Requests/sec line")
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range percentile.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if r.P50 == 0 || r.P99 == 0 {
		return fmt.Errorf("no latency percentiles (wrk --latency)")
	}
	if m := non2xxLine.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.Atoi(m[1])
	}
	if m := socketErrors.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.SocketError += n
		}
	}
	return nil
}
