// Command httpbench measures scalable-app against a bare net/http handler
// (the ceiling) and the seed's Flask app on Flask's dev server and gunicorn,
// under the same load from the tools' load generator, and prints a Markdown
// report.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"scalable-app/internal/config"
	"scalable-app/internal/server"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/test/httpbench"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, command.New(command.OS{}, io.Discard), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "httpbench: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	bare      int
	hardened  bool
	duration  time.Duration
	conns     int
	rounds    int
	withFlask bool
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("httpbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.bare, "serve-bare", 0, "internal: serve the bare net/http handler on this port")
	fs.BoolVar(&o.hardened, "hardened", false, "internal: give the bare server scalable-app's timeouts")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each load run")
	fs.IntVar(&o.conns, "connections", 50, "keep-alive clients (each its own connection)")
	fs.IntVar(&o.rounds, "rounds", 2, "runs of each Go server; the best counts")
	fs.BoolVar(&o.withFlask, "flask", true, "also measure the seed's Flask app (needs python3-flask and gunicorn)")
	return o, fs.Parse(args)
}

// run is the benchmark in named steps: pin, build, measure, report.
func run(ctx context.Context, runner *command.Runner, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if o.bare != 0 {
		return serveBare(o.bare, o.hardened)
	}
	pinning, err := httpbench.PinSelf(ctx, runner)
	if err != nil {
		return fmt.Errorf("%w\ninstall taskset: apt-get install -y util-linux", err)
	}
	tmp, err := os.MkdirTemp("", "httpbench-")
	if err != nil {
		return fmt.Errorf("make a scratch directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(stderr, "building scalable-app")
	app, err := httpbench.BuildApp(ctx, runner, tmp, stderr)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to serve the bare handler: %w", err)
	}
	// A file, as a container runtime keeps the log.
	accessLog, err := os.Create(filepath.Join(tmp, "access.log"))
	if err != nil {
		return fmt.Errorf("create the access log file: %w", err)
	}
	defer accessLog.Close()
	metricsPort, err := httpbench.FreePort()
	if err != nil {
		return err
	}
	goTargets := goServers(app, self, accessLog, metricsPort)
	var flaskTargets []httpbench.Target
	if o.withFlask {
		if err := httpbench.EnsurePython(ctx, runner, stderr, "flask"); err != nil {
			return err
		}
		if flaskTargets, err = flaskServers(tmp); err != nil {
			return err
		}
	}
	m := &httpbench.Best{Run: runner, Load: httpbench.Load{Duration: o.duration, Connections: o.conns}, Log: stderr}
	for range o.rounds {
		if err := m.Measure(ctx, goTargets); err != nil {
			return err
		}
	}
	if err := m.Measure(ctx, flaskTargets); err != nil {
		return err
	}
	report(stdout, o, pinning, m, goTargets, flaskTargets)
	return nil
}

// goServers are scalable-app and the bare handler; the two in between
// attribute the gap: the cost of the access log, and the cost of the
// hardened timeouts (a deadline set per request).
// The last is scalable-app as in the cluster: scraped every 5 s, the
// cost of monitoring.
func goServers(app, self string, accessLog *os.File, metricsPort int) []httpbench.Target {
	return []httpbench.Target{
		{Name: "scalable-app (access log + metrics)", Cmd: func(port int) command.Cmd {
			return command.Cmd{Name: app, Args: []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port)}, Stdout: accessLog}
		}},
		{Name: "bare net/http", Cmd: func(port int) command.Cmd {
			return command.Cmd{Name: self, Args: []string{"-serve-bare", strconv.Itoa(port)}}
		}},
		{Name: "scalable-app, access log off", Cmd: func(port int) command.Cmd {
			return command.Cmd{Name: app, Args: []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--access-log=false"}}
		}},
		{Name: "bare net/http with scalable-app's timeouts", Cmd: func(port int) command.Cmd {
			return command.Cmd{Name: self, Args: []string{"-serve-bare", strconv.Itoa(port), "-hardened"}}
		}},
		{Name: "scalable-app, scraped every 5 s", Cmd: func(port int) command.Cmd {
			return command.Cmd{Name: app, Args: []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--metrics-port", strconv.Itoa(metricsPort)}, Stdout: accessLog}
		}, Scrape: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), ScrapeEvery: 5 * time.Second},
	}
}

func flaskServers(dir string) ([]httpbench.Target, error) {
	appPy := filepath.Join(dir, "app.py")
	if err := os.WriteFile(appPy, []byte(flaskApp), 0o644); err != nil {
		return nil, fmt.Errorf("write the Flask app: %w", err)
	}
	return []httpbench.Target{
		{Name: "Flask dev server", Cmd: func(port int) command.Cmd {
			return command.Cmd{Name: httpbench.Python, Args: []string{appPy}, Env: []string{"PORT=" + strconv.Itoa(port)}}
		}},
		{Name: "Flask on gunicorn, 2 workers", Cmd: func(port int) command.Cmd {
			return command.Cmd{Name: "gunicorn", Args: []string{"-w", "2", "-b", "127.0.0.1:" + strconv.Itoa(port),
				"--chdir", dir, "--log-level", "warning", "app:app"}}
		}},
	}, nil
}

func report(w io.Writer, o options, pinning string, m *httpbench.Best, goTargets, flaskTargets []httpbench.Target) {
	fmt.Fprintf(w, "%d keep-alive clients (raw HTTP/1.1, no retries) back to back, %s per run, %s; best of %d runs for the Go servers.\n\n",
		o.conns, o.duration, pinning, o.rounds)
	fmt.Fprintln(w, "| server | req/s | p50 | p99 | server CPU/req | idle RSS | peak RSS | failed |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range m.Results() {
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %.1f µs | %.1f MB | %.1f MB | %d |\n", r.Name, r.RPS,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), float64(r.CPUPerRequest.Nanoseconds())/1000,
			float64(r.IdleRSSKiB)/1024, float64(r.PeakRSSKiB)/1024, r.Failed)
	}
	app, bare := m.Of(goTargets[0].Name), m.Of(goTargets[1].Name)
	noLog, hardBare := m.Of(goTargets[2].Name), m.Of(goTargets[3].Name)
	fmt.Fprintf(w, "\nRatio scalable-app / bare net/http: **%.2f** (target at least 0.90).\n", app.RPS/bare.RPS)
	scraped := m.Of(goTargets[4].Name)
	fmt.Fprintf(w, "Ratio scalable-app scraped every 5 s / not scraped: **%.2f** in req/s, %.2f in server CPU per request (monitoring's cost, with the run-to-run noise of both).\n",
		scraped.RPS/app.RPS, float64(scraped.CPUPerRequest)/float64(app.CPUPerRequest))
	fmt.Fprintf(w, "One scrape costs the server **%s** of CPU (measured on 200 scrapes; a request costs %s): every 5 s, **%.3f%%** of the one CPU it is pinned to, so at most that share of its throughput.\n",
		scraped.CPUPerScrape.Round(time.Microsecond), app.CPUPerRequest.Round(100*time.Nanosecond), 100*scraped.CPUPerScrape.Seconds()/5)
	fmt.Fprintf(w, "Where the gap goes: timeouts alone %.2f of bare; metrics and headers on top of them %.2f; access log on top of those %.2f.\n",
		hardBare.RPS/bare.RPS, noLog.RPS/hardBare.RPS, app.RPS/noLog.RPS)
	for _, t := range flaskTargets {
		fmt.Fprintf(w, "Ratio scalable-app / %s: **%.1f**.\n", t.Name, app.RPS/m.Of(t.Name).RPS)
	}
	fmt.Fprintf(w, "Idle RSS of scalable-app: **%.1f MB** (target under 15 MB).\n", float64(app.IdleRSSKiB)/1024)
}

// serveBare is the ceiling: net/http with a handler that only writes the
// text. hardened adds scalable-app's default timeouts, nothing else.
func serveBare(port int, hardened bool) error {
	body := []byte(server.Greeting)
	srv := &http.Server{
		Addr: "127.0.0.1:" + strconv.Itoa(port),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(body)
		}),
	}
	if hardened {
		// The service's own defaults: parsed from no flags and no environment.
		def, err := config.Parse("httpbench", nil, func(string) string { return "" }, io.Discard)
		if err != nil {
			return fmt.Errorf("read scalable-app's default timeouts: %w", err)
		}
		srv.ReadHeaderTimeout, srv.ReadTimeout = def.ReadHeaderTimeout, def.ReadTimeout
		srv.WriteTimeout, srv.IdleTimeout = def.WriteTimeout, def.IdleTimeout
	}
	return srv.ListenAndServe()
}
