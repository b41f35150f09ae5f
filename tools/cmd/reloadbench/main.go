// Command bench measures save-to-new-response latency of the hot reloader
// (polling and inotify modes) and of air, the reloader a Go developer would
// pick instead, in the same run on the same machine: `make bench-reload`.
//
// For each tool it copies the source to a temporary directory, starts the
// tool on a loopback port, then saves N edits of the greeting constant; for
// each, the time from the end of the write to the first response carrying
// the new text. Meanwhile a client (one connection per request, and one
// keep-alive connection) sends requests and counts refused connections and
// failed requests. air is installed with `go install` into a cache directory
// outside the repository, never into go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/internal/sourcetree"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Every command shows in the log: a benchmark is read after the fact.
	runner := command.New(command.OS{}, os.Stderr)
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, runner); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "bench-reload: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	edits        int
	airVersion   string
	cacheDir     string
	pollInterval time.Duration
	debounce     time.Duration
	skipAir      bool
	block        int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, runner *command.Runner) error {
	var o options
	fs := flag.NewFlagSet("bench-reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	userCache, _ := os.UserCacheDir()
	fs.IntVar(&o.edits, "edits", 20, "edits per tool")
	fs.StringVar(&o.airVersion, "air", "v1.67", "air version query for go install (v1.67: the latest v1.67.x)")
	fs.StringVar(&o.cacheDir, "cache", filepath.Join(userCache, "scalable-app", "bench-reload"), "where air is installed, outside the repository")
	fs.DurationVar(&o.pollInterval, "poll-interval", 200*time.Millisecond, "the reloader's poll interval (air's floor is 500ms)")
	fs.DurationVar(&o.debounce, "debounce", 50*time.Millisecond, "quiet time before a build, for both tools (air's `delay`)")
	fs.BoolVar(&o.skipAir, "skip-air", false, "measure the reloader only")
	fs.IntVar(&o.block, "block", 5, "edits a tool gets in a row before the next tool's turn")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := repo.Root()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-reload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "bench-reload: "+format+"\n", a...) }

	logf("building the reloader")
	hotreload := filepath.Join(work, "hotreload")
	if _, err := runner.Exec(ctx, command.Cmd{
		What: "build the reloader", Name: "go", Args: []string{"build", "-o", hotreload, "./cmd/hotreload"},
		Dir: filepath.Join(root, "tools"),
	}); err != nil {
		return err
	}
	air, airVersion := "", ""
	if !o.skipAir {
		if air, airVersion, err = installAir(ctx, runner, o, logf); err != nil {
			return err
		}
	}

	type scenario struct {
		tool, mode string
		start      func(src, out string, port int) (command.Cmd, error)
	}
	debounce := o.debounce.String()
	scenarios := []scenario{
		{"hotreload", "polling " + o.pollInterval.String(), func(src, out string, port int) (command.Cmd, error) {
			return command.Cmd{What: "start the reloader, polling", Name: hotreload, Args: []string{
				"--dir", src, "--out", out, "--addr", fmt.Sprintf("127.0.0.1:%d", port),
				"--watch=poll", "--poll-interval=" + o.pollInterval.String(), "--debounce=" + debounce,
				"--", "--access-log=false", "--log-format=text"}}, nil
		}},
		{"hotreload", "inotify", func(src, out string, port int) (command.Cmd, error) {
			return command.Cmd{What: "start the reloader, on file events", Name: hotreload, Args: []string{
				"--dir", src, "--out", out, "--addr", fmt.Sprintf("127.0.0.1:%d", port),
				"--watch=inotify", "--debounce=" + debounce,
				"--", "--access-log=false", "--log-format=text"}}, nil
		}},
	}
	if air != "" {
		scenarios = append(scenarios, scenario{"air " + airVersion, "poll = true, 500ms", func(src, out string, port int) (command.Cmd, error) {
			conf := filepath.Join(out, "air.toml")
			if err := os.WriteFile(conf, []byte(airConfig(src, out, port, o.debounce)), 0o644); err != nil {
				return command.Cmd{}, fmt.Errorf("write air's configuration: %w", err)
			}
			return command.Cmd{What: "start air", Name: air, Args: []string{"-c", conf}, Dir: src}, nil
		}})
	}

	// All tools run side by side, idle but for the one being edited, and
	// take turns in blocks of edits: a change in the machine's load (other
	// work on its 2 cores) then falls on every tool alike.
	var insts []*instance
	defer func() {
		for _, in := range insts {
			in.close()
		}
	}()
	for _, sc := range scenarios {
		logf("starting %s (%s)", sc.tool, sc.mode)
		in, err := startInstance(ctx, runner, root, work, sc.start)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", sc.tool, sc.mode, err)
		}
		in.res.tool, in.res.mode = sc.tool, sc.mode
		insts = append(insts, in)
	}
	for done := 0; done < o.edits && ctx.Err() == nil; {
		n := min(o.block, o.edits-done)
		for _, in := range insts {
			logf("%s (%s): edits %d-%d", in.res.tool, in.res.mode, done+1, done+n)
			if err := in.edit(ctx, done+1, n, logf); err != nil {
				return err
			}
		}
		done += n
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var results []result
	for _, in := range insts {
		results = append(results, in.res)
	}
	report(stdout, o, results)
	return nil
}

// installAir installs air into the cache directory, once per version.
func installAir(ctx context.Context, runner *command.Runner, o options, logf func(string, ...any)) (bin, version string, err error) {
	if err := os.MkdirAll(o.cacheDir, 0o755); err != nil {
		return "", "", err
	}
	// Resolve the query (v1.67 -> v1.67.N) from the Go module proxy.
	out, err := runner.Exec(ctx, command.Cmd{
		What: "resolve the air version", Name: "go",
		Args: []string{"list", "-m", "-f", "{{.Version}}", "github.com/air-verse/air@" + o.airVersion},
		Dir:  o.cacheDir, // outside any module
	})
	if err != nil {
		return "", "", err
	}
	version = strings.TrimSpace(string(out))
	bin = filepath.Join(o.cacheDir, "air-"+version, "air")
	if _, err := os.Stat(bin); err == nil {
		return bin, version, nil
	}
	logf("installing air %s into %s", version, filepath.Dir(bin))
	// Outside any module, so our go.mod is never touched.
	if _, err := runner.Exec(ctx, command.Cmd{
		What: "install air", Name: "go", Args: []string{"install", "github.com/air-verse/air@" + version},
		Dir: o.cacheDir, Env: []string{"GOBIN=" + filepath.Dir(bin), "GOFLAGS=-mod=mod"},
	}); err != nil {
		return "", "", err
	}
	return bin, version, nil
}

// airConfig is air's configuration for the same build as the reloader's,
// with polling on. air's tmp directory and binary live outside the source.
func airConfig(src, out string, port int, delay time.Duration) string {
	return fmt.Sprintf(`root = %q
tmp_dir = %q

[build]
cmd = "go build -trimpath -buildvcs=false -ldflags='-s -w' -o %s/main ./cmd/scalable-app"
entrypoint = [%q, "--host=127.0.0.1", "--port=%d", "--access-log=false", "--log-format=text"]
include_ext = ["go"]
exclude_dir = ["tmp", "vendor", "testdata"]
poll = true
poll_interval = 500
delay = %d
send_interrupt = true
kill_delay = 500

[log]
time = false

[misc]
clean_on_exit = true

[screen]
clear_on_rebuild = false
`, src, filepath.Join(out, "air-tmp"), out, filepath.Join(out, "main"), port, delay.Milliseconds())
}

type result struct {
	tool, mode string
	latencies  []time.Duration
	missed     int // edits never served within the time limit
	requests   int64
	refused    int64
	failed     int64
	firstError string
}

// instance is one tool running over its own copy of the source.
type instance struct {
	src, url, log string
	proc          command.Process
	exited        chan struct{}
	res           result
}

func startInstance(ctx context.Context, runner *command.Runner, root, work string, start func(src, out string, port int) (command.Cmd, error)) (*instance, error) {
	src, err := os.MkdirTemp(work, "src-")
	if err != nil {
		return nil, err
	}
	if err := sourcetree.Copy(root, src); err != nil {
		return nil, err
	}
	out, err := os.MkdirTemp(work, "out-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	in := &instance{src: src, url: fmt.Sprintf("http://127.0.0.1:%d/", port), log: filepath.Join(out, "tool.log"), exited: make(chan struct{})}
	cmd, err := start(src, out, port)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(in.log)
	if err != nil {
		return nil, err
	}
	// A group of its own: the tool's app is stopped with it.
	cmd.Stdout, cmd.Stderr, cmd.OwnGroup = logFile, logFile, true
	if in.proc, err = runner.Start(ctx, cmd); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		_ = in.proc.Wait()
		logFile.Close()
		close(in.exited)
	}()
	if _, err := waitText(ctx, in.url, "Hello from Kubernetes", 3*time.Minute); err != nil {
		in.close()
		return nil, fmt.Errorf("first build not served: %w", err)
	}
	return in, nil
}

// edit saves n edits, numbered from first, each measured from the end of
// the write to the first response with the new text, while the concurrent
// client runs.
func (in *instance) edit(ctx context.Context, first, n int, logf func(string, ...any)) error {
	load := startLoad(in.url)
	for i := first; i < first+n && ctx.Err() == nil; i++ {
		text := fmt.Sprintf("Hello from edit %d", i)
		if err := sourcetree.SetGreeting(in.src, text); err != nil {
			return err
		}
		d, err := waitText(ctx, in.url, text, 30*time.Second)
		if err != nil {
			in.res.missed++
			logf("  edit %2d: not served: %v (log: %s)", i, err, in.log)
			continue
		}
		in.res.latencies = append(in.res.latencies, d)
		logf("  edit %2d: %s", i, d.Round(time.Millisecond))
		// A developer does not save twice a second; this also lets the old
		// process drain, so each edit is measured on its own.
		time.Sleep(700 * time.Millisecond)
	}
	total, refused, failed, first1 := load.stop()
	in.res.requests += total
	in.res.refused += refused
	in.res.failed += failed
	if in.res.firstError == "" {
		in.res.firstError = first1
	}
	return nil
}

// close stops the tool and its app gracefully, then for good.
func (in *instance) close() {
	_ = in.proc.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(20 * time.Second):
		_ = in.proc.Signal(syscall.SIGKILL)
		<-in.exited
	}
}

// waitText polls url on new connections every 10 ms until the body is text;
// it returns the time taken.
func waitText(ctx context.Context, url, text string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	last := ""
	for time.Since(start) < limit {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(b) == text {
				return time.Since(start), nil
			}
			last = fmt.Sprintf("%d %.60q", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("no %q within %s (last: %s)", text, limit, last)
}

// load is the concurrent client: two loops at about 100 requests per second
// each, one opening a connection per request, one keeping its connection.
type load struct {
	stopC            chan struct{}
	wg               sync.WaitGroup
	total, ref, fail atomic.Int64
	mu               sync.Mutex
	firstErr         string
}

func startLoad(url string) *load {
	l := &load{stopC: make(chan struct{})}
	for _, keepAlive := range []bool{false, true} {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-l.stopC:
					return
				case <-tick.C:
				}
				l.total.Add(1)
				resp, err := client.Get(url)
				if err != nil {
					if errors.Is(err, syscall.ECONNREFUSED) {
						l.ref.Add(1)
					} else {
						l.fail.Add(1)
					}
					l.note(err.Error())
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "Hello") {
					l.fail.Add(1)
					l.note(fmt.Sprintf("status %d, %v", resp.StatusCode, err))
				}
			}
		}()
	}
	return l
}

func (l *load) note(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstErr == "" {
		l.firstErr = msg
	}
}

func (l *load) stop() (total, refused, failed int64, first string) {
	close(l.stopC)
	l.wg.Wait()
	return l.total.Load(), l.ref.Load(), l.fail.Load(), l.firstErr
}

// percentile is the nearest-rank percentile.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func report(w io.Writer, o options, results []result) {
	fmt.Fprintf(w, "Save-to-new-response latency over %d edits (%s, %d CPUs, %s), with a concurrent client (~200 req/s):\n\n",
		o.edits, runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintln(w, "| tool | watching | p50 | p95 | max | edits not served | requests | refused | failed |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		s := slices.Clone(r.latencies)
		slices.Sort(s)
		var maxD time.Duration
		if len(s) > 0 {
			maxD = s[len(s)-1]
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d | %d | %d | %d |\n", r.tool, r.mode,
			sec(percentile(s, 50)), sec(percentile(s, 95)), sec(maxD), r.missed, r.requests, r.refused, r.failed)
	}
	fmt.Fprintln(w)
	for _, r := range results {
		if r.firstError != "" {
			fmt.Fprintf(w, "- %s (%s), first failure: %s\n", r.tool, r.mode, r.firstError)
		}
	}
	if len(results) > 0 {
		s := slices.Clone(results[0].latencies)
		slices.Sort(s)
		ok := len(s) > 0 && percentile(s, 50) <= time.Second && percentile(s, 95) <= 2*time.Second &&
			results[0].refused == 0 && results[0].missed == 0
		verdict := "met"
		if !ok {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "\nTargets for the reloader in polling mode (p50 <= 1.0 s, p95 <= 2.0 s, zero refused): %s.\n", verdict)
	}
}

func sec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
