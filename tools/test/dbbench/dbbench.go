// Package dbbench measures the guestbook API on a real PostgreSQL: POST
// and GET /api/messages through scalable-app, against a bare net/http +
// pgx handler running the same SQL on a pool of the same size (the
// ceiling), and against the seed's stack (Flask and psycopg2 on gunicorn, 2
// workers, Debian's packages). Each server gets a fresh migrated database
// on the same PostgreSQL server; the load generator is the tools' (keep-alive
// clients back to back, no retries).
package dbbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"scalable-app/internal/config"
	"scalable-app/internal/store"
	"scalable-app/internal/store/pgtest"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/test/httpbench"
	"scalable-app/tools/test/load"
)

// The targets, by name in the report.
const (
	serviceName = "scalable-app (access log + metrics)"
	noLogName   = "scalable-app, access log off"
	bareName    = "bare net/http + pgx"
	flaskName   = "Flask + psycopg2 on gunicorn, 2 workers"
)

// Options configure Run.
type Options struct {
	Run         *command.Runner
	Log         io.Writer // progress
	Out         io.Writer // the Markdown report
	Duration    time.Duration
	Connections int
	Rounds      int  // runs of each server per workload; the best counts, and each round's ratios
	Flask       bool // also measure the seed's stack
	// Self is a command that serves the bare handler: Self + ["-serve-bare",
	// port, database URL, pool size].
	Self []string
}

// workload is one request every client sends back to back.
type workload struct {
	name       string
	request    load.Request
	wantStatus int
}

var workloads = []workload{
	{"POST /api/messages", load.Request{Method: "POST", Path: "/api/messages",
		Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"text":"Hello from the benchmark"}`)}, http.StatusCreated},
	{"GET /api/messages?limit=20", load.Request{Method: "GET", Path: "/api/messages?limit=20"}, http.StatusOK},
}

// Run is the benchmark: pin, start PostgreSQL, build, measure, report.
func Run(ctx context.Context, o Options) error {
	pinning, err := httpbench.PinSelf(ctx, o.Run)
	if err != nil {
		return fmt.Errorf("%w\ninstall taskset: apt-get install -y util-linux", err)
	}
	if o.Flask {
		if err := httpbench.EnsurePython(ctx, o.Run, o.Log, "flask", "psycopg2"); err != nil {
			return err
		}
	}
	// Started after PinSelf: PostgreSQL shares the load generator's CPU,
	// the server under test has CPU 0 to itself.
	fmt.Fprintln(o.Log, "starting PostgreSQL")
	pg, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		return err
	}
	defer pg.Close()
	tmp, err := os.MkdirTemp("", "dbbench-")
	if err != nil {
		return fmt.Errorf("make a scratch directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(o.Log, "building scalable-app")
	app, err := httpbench.BuildApp(ctx, o.Run, tmp, o.Log)
	if err != nil {
		return err
	}
	accessLog, err := os.Create(filepath.Join(tmp, "access.log"))
	if err != nil {
		return fmt.Errorf("create the access log file: %w", err)
	}
	defer accessLog.Close()
	def, err := config.Parse("dbbench", nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		return fmt.Errorf("read scalable-app's defaults: %w", err)
	}

	// A database of its own for each server, so none reads another's rows.
	var urls []string
	for i := range 4 {
		url, err := newDatabase(ctx, pg, "bench_"+strconv.Itoa(i))
		if err != nil {
			return err
		}
		urls = append(urls, url)
	}
	goTargets := []httpbench.Target{
		appTarget(serviceName, app, urls[0], accessLog),
		{Name: bareName, Cmd: func(port int) command.Cmd {
			args := append(slices.Clone(o.Self[1:]), "-serve-bare", strconv.Itoa(port), urls[1], strconv.Itoa(def.DBMaxConns))
			return command.Cmd{Name: o.Self[0], Args: args}
		}},
		appTarget(noLogName, app, urls[2], accessLog),
	}
	var flaskTargets []httpbench.Target
	if o.Flask {
		t, err := flaskTarget(tmp, urls[3])
		if err != nil {
			return err
		}
		flaskTargets = append(flaskTargets, t)
	}

	results := make([]*httpbench.Best, len(workloads))
	for i, w := range workloads {
		req := w.request
		b := &httpbench.Best{Run: o.Run, Log: o.Log, Load: httpbench.Load{Duration: o.Duration, Connections: o.Connections,
			Request: &req, WantStatus: w.wantStatus, Name: w.name, Database: pg.Pid()}}
		// Flask in every round too: the machine's speed drifts over minutes,
		// so each round's ratio compares runs a few seconds apart.
		for range o.Rounds {
			if err := b.Measure(ctx, append(slices.Clone(goTargets), flaskTargets...)); err != nil {
				return err
			}
		}
		results[i] = b
	}
	fmt.Fprintf(o.Out, "%d keep-alive clients (raw HTTP/1.1, no retries) back to back, %s per run, %s, PostgreSQL %s on the generator's CPU "+
		"(fsync off: the figures are the HTTP and driver stack's, not the disk's); %d rounds, each server once a round; best round per server; pool of %d connections for both Go servers.\n",
		o.Connections, o.Duration, pinning, serverVersion(ctx, pg), o.Rounds, def.DBMaxConns)
	for i, w := range workloads {
		report(o.Out, w.name, results[i], o.Flask)
	}
	return nil
}

// appTarget is scalable-app on url, its access log in accessLog (a file,
// as a container runtime keeps it) for serviceName, off for noLogName.
func appTarget(name, app, url string, accessLog *os.File) httpbench.Target {
	withLog := name == serviceName
	return httpbench.Target{Name: name, Cmd: func(port int) command.Cmd {
		c := command.Cmd{Name: app, Env: []string{"DATABASE_URL=" + url},
			Args: []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--metrics-port", "0", "--access-log=" + strconv.FormatBool(withLog)}}
		if withLog {
			c.Stdout = accessLog
		}
		return c
	}}
}

func flaskTarget(dir, url string) (httpbench.Target, error) {
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(flaskApp), 0o644); err != nil {
		return httpbench.Target{}, fmt.Errorf("write the Flask app: %w", err)
	}
	return httpbench.Target{Name: flaskName, Cmd: func(port int) command.Cmd {
		return command.Cmd{Name: "gunicorn", Args: []string{"-w", "2", "-b", "127.0.0.1:" + strconv.Itoa(port),
			"--chdir", dir, "--log-level", "warning", "app:app"}, Env: []string{"DATABASE_URL=" + url}}
	}}, nil
}

// newDatabase creates a database on pg and applies the service's
// migrations to it, as the service does at start.
func newDatabase(ctx context.Context, pg *pgtest.Server, name string) (string, error) {
	if err := pg.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	url := pg.URL(name)
	s, err := store.Open(url, store.Config{MaxConns: 2, QueryTimeout: 30 * time.Second},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		return "", err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return "", fmt.Errorf("migrate database %s: %w", name, err)
	}
	return url, nil
}

func serverVersion(ctx context.Context, pg *pgtest.Server) string {
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return "(version unknown)"
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "(version unknown)"
	}
	return v
}

func report(w io.Writer, name string, b *httpbench.Best, withFlask bool) {
	fmt.Fprintf(w, "\n**%s**\n\n| server | req/s | p50 | p99 | CPU/req: server | PostgreSQL | generator | peak RSS | failed |\n"+
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|\n", name)
	for _, r := range b.Results() {
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %.1f MB | %d |\n", r.Name, r.RPS,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), micros(r.CPUPerRequest), micros(r.DatabaseCPUPerRequest),
			micros(r.GeneratorCPUPerRequest), float64(r.PeakRSSKiB)/1024, r.Failed)
	}
	app, bare, noLog := b.Of(serviceName), b.Of(bareName), b.Of(noLogName)
	fmt.Fprintf(w, "\nscalable-app / bare: **%.2f** (target at least 0.85); access log off / bare: %.2f; with the access log / without: %.2f.\n",
		app.RPS/bare.RPS, noLog.RPS/bare.RPS, app.RPS/noLog.RPS)
	if withFlask {
		flask := b.Of(flaskName)
		fmt.Fprintf(w, "scalable-app / Flask: **%.1f** (target at least 5); median of the rounds' own ratios %.1f (%s); "+
			"Flask's server CPU per request / scalable-app's: %.1f.\n",
			app.RPS/flask.RPS, medianRatio(b.Runs(serviceName), b.Runs(flaskName)), ratios(b.Runs(serviceName), b.Runs(flaskName)),
			float64(flask.CPUPerRequest)/float64(app.CPUPerRequest))
	}
	// Which CPU held scalable-app back: the busier one is the limit.
	fmt.Fprintf(w, "In scalable-app's run, CPU 0 (the server) was %.0f%% busy, CPU 1 (PostgreSQL and the generator) %.0f%%.\n",
		busy(app.CPUPerRequest, app.RPS), busy(app.DatabaseCPUPerRequest+app.GeneratorCPUPerRequest, app.RPS))
}

// roundRatios are a's req/s over b's, round by round.
func roundRatios(a, b []httpbench.Result) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		out = append(out, a[i].RPS/b[i].RPS)
	}
	return out
}

func medianRatio(a, b []httpbench.Result) float64 {
	r := roundRatios(a, b)
	if len(r) == 0 {
		return 0
	}
	slices.Sort(r)
	if len(r)%2 == 1 {
		return r[len(r)/2]
	}
	return (r[len(r)/2-1] + r[len(r)/2]) / 2
}

func ratios(a, b []httpbench.Result) string {
	var s []string
	for _, r := range roundRatios(a, b) {
		s = append(s, strconv.FormatFloat(r, 'f', 1, 64))
	}
	return strings.Join(s, ", ")
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// busy is the share of one CPU that perRequest at rps takes, in per cent.
func busy(perRequest time.Duration, rps float64) float64 { return 100 * perRequest.Seconds() * rps }
