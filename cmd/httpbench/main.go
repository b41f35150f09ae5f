// Command httpbench measures scalable-app against a bare net/http handler
// (the ceiling) and the seed's Flask app on Flask's dev server and gunicorn,
// under the same wrk load, and prints a Markdown report.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"scalable-app/internal/httpbench"
	"scalable-app/internal/server"
)

// flaskApp is the seed's application, reading its port from the environment.
const flaskApp = `import os
from flask import Flask
app = Flask(__name__)

@app.route('/')
def hello():
    return "Hello from Kubernetes"

if __name__ == '__main__':
    app.run(host='127.0.0.1', port=int(os.environ["PORT"]))
`

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "httpbench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	bare := flag.Int("serve-bare", 0, "internal: serve the bare net/http handler on this port")
	hardened := flag.Bool("hardened", false, "internal: give the bare server scalable-app's timeouts")
	duration := flag.Duration("duration", 10*time.Second, "length of each wrk run")
	conns := flag.Int("connections", 50, "concurrent connections")
	rounds := flag.Int("rounds", 2, "runs of each Go server; the best counts")
	withFlask := flag.Bool("flask", true, "also measure the seed's Flask app (needs python3-flask and gunicorn)")
	flag.Parse()
	if *bare != 0 {
		return serveBare(*bare, *hardened)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, tool := range []string{"wrk", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: apt-get install -y wrk util-linux", tool)
		}
	}
	tmp, err := os.MkdirTemp("", "httpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Fprintln(os.Stderr, "building scalable-app")
	app := filepath.Join(tmp, "scalable-app")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", app, "./cmd/scalable-app")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build scalable-app: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile := filepath.Join(tmp, "access.log")

	goTargets := []httpbench.Target{
		{Name: "scalable-app (access log + metrics)", Start: func(ctx context.Context, port int) (*exec.Cmd, error) {
			cmd := httpbench.PinnedCommand(ctx, app, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
			f, err := os.Create(logFile)
			if err != nil {
				return nil, err
			}
			cmd.Stdout = f // a file, as a container runtime keeps the log
			err = cmd.Start()
			f.Close() // the server holds its own descriptor now
			return cmd, err
		}},
		{Name: "bare net/http", Start: func(ctx context.Context, port int) (*exec.Cmd, error) {
			cmd := httpbench.PinnedCommand(ctx, self, "-serve-bare", strconv.Itoa(port))
			return cmd, cmd.Start()
		}},
		// The two below attribute the gap: the cost of the access log, and
		// the cost of the hardened timeouts (a deadline set per request).
		{Name: "scalable-app, access log off", Start: func(ctx context.Context, port int) (*exec.Cmd, error) {
			cmd := httpbench.PinnedCommand(ctx, app, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--access-log=false")
			return cmd, cmd.Start()
		}},
		{Name: "bare net/http with scalable-app's timeouts", Start: func(ctx context.Context, port int) (*exec.Cmd, error) {
			cmd := httpbench.PinnedCommand(ctx, self, "-serve-bare", strconv.Itoa(port), "-hardened")
			return cmd, cmd.Start()
		}},
	}
	var flaskTargets []httpbench.Target
	if *withFlask {
		appPy := filepath.Join(tmp, "app.py")
		if err := os.WriteFile(appPy, []byte(flaskApp), 0o644); err != nil {
			return err
		}
		flaskTargets = []httpbench.Target{
			{Name: "Flask dev server", Start: func(ctx context.Context, port int) (*exec.Cmd, error) {
				cmd := httpbench.PinnedCommand(ctx, "python3", appPy)
				cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
				return cmd, cmd.Start()
			}},
			{Name: "Flask on gunicorn, 2 workers", Start: func(ctx context.Context, port int) (*exec.Cmd, error) {
				cmd := httpbench.PinnedCommand(ctx, "gunicorn", "-w", "2", "-b", "127.0.0.1:"+strconv.Itoa(port),
					"--chdir", tmp, "--log-level", "warning", "app:app")
				return cmd, cmd.Start()
			}},
		}
	}

	load := httpbench.Load{Duration: *duration, Connections: *conns, Threads: 1}
	best := map[string]httpbench.Result{}
	var order []string
	measure := func(t httpbench.Target) error {
		r, err := httpbench.Measure(ctx, t, load, os.Stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "    %.0f req/s, p50 %s, p99 %s\n", r.RPS, r.P50, r.P99)
		prev, seen := best[t.Name]
		if !seen {
			order = append(order, t.Name)
		}
		if !seen || r.RPS > prev.RPS {
			best[t.Name] = r
		}
		return nil
	}
	for i := 0; i < *rounds; i++ {
		for _, t := range goTargets {
			if err := measure(t); err != nil {
				return err
			}
		}
	}
	for _, t := range flaskTargets {
		if err := measure(t); err != nil {
			return err
		}
	}

	fmt.Printf("wrk, 1 thread, %d connections, %s per run, server pinned to CPU 0 and wrk to CPU %d; best of %d runs for the Go servers.\n\n",
		*conns, *duration, max(runtime.NumCPU()-1, 0), *rounds)
	fmt.Println("| server | req/s | p50 | p99 | idle RSS | peak RSS | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, name := range order {
		r := best[name]
		fmt.Printf("| %s | %.0f | %s | %s | %.1f MB | %.1f MB | %d |\n", r.Name, r.RPS,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond),
			float64(r.IdleRSSKiB)/1024, float64(r.PeakRSSKiB)/1024, r.Non2xx+r.SocketError)
	}
	app1, bareR := best[goTargets[0].Name], best[goTargets[1].Name]
	noLog, hardBare := best[goTargets[2].Name], best[goTargets[3].Name]
	fmt.Printf("\nRatio scalable-app / bare net/http: **%.2f** (target at least 0.90).\n", app1.RPS/bareR.RPS)
	fmt.Printf("Where the gap goes: timeouts alone %.2f of bare; metrics and headers on top of them %.2f; access log on top of those %.2f.\n",
		hardBare.RPS/bareR.RPS, noLog.RPS/hardBare.RPS, app1.RPS/noLog.RPS)
	for _, t := range flaskTargets {
		fmt.Printf("Ratio scalable-app / %s: **%.1f**.\n", t.Name, app1.RPS/best[t.Name].RPS)
	}
	fmt.Printf("Idle RSS of scalable-app: **%.1f MB** (target under 15 MB).\n", float64(app1.IdleRSSKiB)/1024)
	return nil
}

// serveBare is the ceiling: net/http with a handler that only writes the
// text. hardened adds scalable-app's default timeouts, nothing else.
func serveBare(port int, hardened bool) error {
	body := []byte(server.Greeting)
	srv := &http.Server{
		Addr: "127.0.0.1:" + strconv.Itoa(port),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(body)
		}),
	}
	if hardened {
		srv.ReadHeaderTimeout, srv.ReadTimeout = 5*time.Second, 10*time.Second
		srv.WriteTimeout, srv.IdleTimeout = 10*time.Second, 120*time.Second
	}
	return srv.ListenAndServe()
}
