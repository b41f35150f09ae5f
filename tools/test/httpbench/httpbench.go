// Package httpbench measures HTTP servers under the same load: requests per
// second and latency percentiles from the tools' load generator (test/load:
// keep-alive clients back to back, no retries), and the server's resident
// memory idle and at peak, read from /proc.
//
// On a small machine the load generator and the server fight for CPU, so
// the server is pinned to CPU 0 and the generator, in the calling process,
// to the other CPUs (see PinSelf).
package httpbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/test/load"
)

// Target is a server to measure.
type Target struct {
	Name string
	// Cmd is the server's command for port; the server must answer GET /
	// with 200. Measure pins it to CPU 0.
	Cmd func(port int) command.Cmd
	// Scrape, when set, is a metrics URL of the server that Measure fetches
	// every ScrapeEvery while the load runs, as Prometheus would.
	Scrape      string
	ScrapeEvery time.Duration
}

// Result is one measurement.
type Result struct {
	Name       string
	RPS        float64
	P50, P99   time.Duration
	IdleRSSKiB int
	PeakRSSKiB int
	Failed     int // requests without the wanted status: other statuses and no answer
	Report     load.Report
	// CPUPerRequest is the server's CPU time (all its threads and
	// children) during the load, divided by the requests answered: a cost
	// that, unlike req/s, hardly moves with the machine's other work.
	CPUPerRequest time.Duration
	// DatabaseCPUPerRequest is the same for Load.Database's process tree,
	// and GeneratorCPUPerRequest for the load generator (this process's
	// own threads): with the server's, where each answer's CPU went.
	DatabaseCPUPerRequest  time.Duration
	GeneratorCPUPerRequest time.Duration
	// CPUPerScrape is the server's CPU time for one fetch of Scrape,
	// measured on 200 fetches before the load.
	CPUPerScrape time.Duration
}

// Load configures the generator.
type Load struct {
	Duration    time.Duration
	Connections int // keep-alive clients
	// What each client sends: GET / answered 200 when Request is nil.
	Request    *load.Request
	WantStatus int
	// Name of the workload in the log, e.g. "POST /api/messages".
	Name string
	// Database, when not 0, is the pid of a database server the target
	// uses, whose CPU per request Measure records too.
	Database int
}

// PinSelf pins this process (all its threads, the load generator's
// included) to every CPU but 0, which Measure leaves to the server.
func PinSelf(ctx context.Context, run *command.Runner) (string, error) {
	cpus := runtime.NumCPU()
	if cpus < 2 {
		return "server and generator share the only CPU", nil
	}
	set := "1-" + strconv.Itoa(cpus-1)
	if cpus == 2 {
		set = "1"
	}
	if err := run.Run(ctx, "pin the load generator to CPUs "+set, "taskset", "-a", "-p", "-c", set, strconv.Itoa(os.Getpid())); err != nil {
		return "", err
	}
	return "server pinned to CPU 0, load generator to CPU " + set, nil
}

// Measure starts the target, waits until it serves, records its idle RSS,
// runs the load against it and records the peak RSS of the process tree.
func Measure(ctx context.Context, run *command.Runner, t Target, l Load, log io.Writer) (Result, error) {
	port, err := freePort()
	if err != nil {
		return Result{}, err
	}
	c := t.Cmd(port)
	c.Name, c.Args = "taskset", append([]string{"-c", "0", c.Name}, c.Args...)
	c.OwnGroup = true // so stopping it reaches gunicorn's workers too
	if c.What == "" {
		c.What = "start " + t.Name
	}
	sctx, stop := context.WithCancel(ctx)
	p, err := run.Start(sctx, c)
	if err != nil {
		stop()
		return Result{}, err
	}
	defer func() { stop(); _ = p.Wait() }() // SIGTERM to its group, killed 5 s later
	target := load.Target{URL: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	if err := waitServing(ctx, target, 30*time.Second); err != nil {
		return Result{}, fmt.Errorf("%s: %w", t.Name, err)
	}
	// Let start-up garbage settle before reading the idle footprint.
	time.Sleep(500 * time.Millisecond)
	res := Result{Name: t.Name, IdleRSSKiB: treeRSS(p.Pid(), "VmRSS")}
	what := l.Name
	if what == "" {
		what = "GET /"
	}
	fmt.Fprintf(log, "  %s, %s: %d keep-alive clients for %s\n", t.Name, what, l.Connections, l.Duration)
	var scrapes <-chan scrapeCount
	if t.Scrape != "" {
		if res.CPUPerScrape, err = scrapeCost(ctx, p.Pid(), load.Target{URL: t.Scrape}, 200); err != nil {
			return Result{}, fmt.Errorf("%s: %w", t.Name, err)
		}
		scrapes = scrape(ctx, load.Target{URL: t.Scrape}, t.ScrapeEvery, l.Duration)
	}
	cpuBefore, dbBefore, genBefore := treeCPU(p.Pid()), treeCPU(l.Database), processCPU(os.Getpid())
	rep, err := load.Generate(ctx, load.Options{Target: target, KeepAlive: l.Connections, Duration: l.Duration,
		Request: l.Request, WantStatus: l.WantStatus})
	if err != nil {
		return Result{}, fmt.Errorf("load %s: %w", t.Name, err)
	}
	if scrapes != nil {
		n := <-scrapes
		if n.failed > 0 || n.ok == 0 {
			return Result{}, fmt.Errorf("%s: %d scrapes of %s answered, %d failed", t.Name, n.ok, t.Scrape, n.failed)
		}
		fmt.Fprintf(log, "    %d scrapes of %s, every %s, %d bytes each\n", n.ok, t.Scrape, t.ScrapeEvery, n.bytes/n.ok)
	}
	if rep.OK > 0 {
		n := time.Duration(rep.OK)
		res.CPUPerRequest = (treeCPU(p.Pid()) - cpuBefore) / n
		res.GeneratorCPUPerRequest = (processCPU(os.Getpid()) - genBefore) / n
		if l.Database != 0 {
			res.DatabaseCPUPerRequest = (treeCPU(l.Database) - dbBefore) / n
		}
	}
	res.PeakRSSKiB = treeRSS(p.Pid(), "VmHWM")
	res.RPS, res.P50, res.P99, res.Failed, res.Report = rep.Rate(), rep.Latency.P50, rep.Latency.P99, rep.Failed(), rep
	return res, nil
}

type scrapeCount struct{ ok, failed, bytes int }

// scrape fetches url every interval for d, the first at once, with the
// Accept headers Prometheus sends, and reports the count when done.
func scrape(ctx context.Context, url load.Target, interval, d time.Duration) <-chan scrapeCount {
	out := make(chan scrapeCount, 1)
	req := &load.Request{Method: "GET", Path: "/metrics", Header: http.Header{
		"Accept":          {"application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"},
		"Accept-Encoding": {"gzip"},
	}}
	go func() {
		var n scrapeCount
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			c, err := load.NewClient(url, load.Fresh)
			if err == nil {
				var rep load.Reply
				rep, err = c.Send(ctx, *req)
				c.Close()
				if err == nil && rep.Status != 200 {
					err = fmt.Errorf("status %d", rep.Status)
				}
				n.bytes += len(rep.Body)
			}
			if err != nil {
				n.failed++
			} else {
				n.ok++
			}
			select {
			case <-ctx.Done():
				out <- n
				return
			case <-time.After(interval):
			}
		}
		out <- n
	}()
	return out
}

// FreePort is a port nothing listens on now, for a server to take.
func FreePort() (int, error) { return freePort() }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitServing(ctx context.Context, t load.Target, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		rep, err := load.Get(ctx, t)
		if err == nil && rep.Status == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from %s within %s (last: %+v, %v)", t.URL, within, rep, err)
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
// scrapeCost fetches url n times, one after the other, and returns the
// server's CPU time per fetch.
func scrapeCost(ctx context.Context, pid int, url load.Target, n int) (time.Duration, error) {
	before := treeCPU(pid)
	for i := range n {
		rep, err := load.Get(ctx, url)
		if err != nil || rep.Status != http.StatusOK {
			return 0, fmt.Errorf("scrape %d of %s: status %d, %v", i+1, url.URL, rep.Status, err)
		}
	}
	return (treeCPU(pid) - before) / time.Duration(n), nil
}

// treeCPU is the CPU time the process tree under pid has used: the sum of
// its threads' run time from /proc/PID/task/TID/schedstat (nanoseconds,
// unlike the clock ticks of /proc/PID/stat).
func treeCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	var total time.Duration
	for _, p := range descendants(pid) {
		total += processCPU(p)
	}
	return total
}

// processCPU is the same for one process, its children left out.
func processCPU(pid int) time.Duration {
	var total time.Duration
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "schedstat"))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if fields := strings.Fields(string(b)); len(fields) > 0 {
			ns, _ := strconv.ParseInt(fields[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

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
