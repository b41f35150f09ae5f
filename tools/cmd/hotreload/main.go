// Command hotreload rebuilds and restarts a Go web app on every source
// change without ever closing its listening socket: the Go counterpart of
// Flask's debug reloader, for a dev pod or a developer's machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"scalable-app/internal/activation"
	"scalable-app/tools/dev/reload"
	"scalable-app/tools/internal/command"
)

func main() {
	reload.ExecIfShim()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The reloader logs each build and start itself: the runner's own
	// command log would repeat it.
	runner := command.New(command.OS{}, nil)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, runner); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "hotreload: %v\n", err)
		os.Exit(1)
	}
}

// listOf is a repeatable string flag; with comma set, one value may also
// hold several items separated by commas (handy in an environment variable).
type listOf struct {
	items []string
	comma bool
}

func (l *listOf) String() string { return strings.Join(l.items, ",") }
func (l *listOf) Set(v string) error {
	if !l.comma {
		l.items = append(l.items, v)
		return nil
	}
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			l.items = append(l.items, item)
		}
	}
	return nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, runner *command.Runner) error {
	cfg, err := parse(args, getenv, stdout)
	if err != nil {
		return err
	}
	cfg.Runner = runner
	cfg.Stdout, cfg.Stderr = stdout, stderr
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil)).With("component", "hotreload")

	// Socket activation for the reloader itself: under systemd it serves on
	// the socket it is given.
	ln, err := activation.Listener(getenv, os.Getpid())
	if err != nil {
		return err
	}
	if ln != nil {
		cfg.Listener = ln
	}
	return reload.Run(ctx, cfg)
}

// parse reads the reloader's settings from args and the environment. On
// --help it writes the usage to stdout and returns flag.ErrHelp.
func parse(args []string, getenv func(string) string, stdout io.Writer) (reload.Config, error) {
	cfg := reload.DefaultConfig()
	var ldflags, tags string
	var buildFlags listOf
	excludes := listOf{comma: true}
	fs := flag.NewFlagSet("hotreload", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "address to listen on; bound once and kept open across reloads (default :$PORT when PORT is set)")
	fs.StringVar(&cfg.Dir, "dir", cfg.Dir, "source tree to watch and build in (the Go module's directory)")
	fs.StringVar(&cfg.Package, "pkg", cfg.Package, "package to build, relative to --dir")
	fs.StringVar(&cfg.GoCmd, "go", cfg.GoCmd, "go command to build with")
	fs.StringVar(&ldflags, "ldflags", "-s -w", "go build -ldflags (no symbol table nor DWARF: faster links)")
	fs.StringVar(&tags, "tags", "", "go build -tags")
	fs.Var(&buildFlags, "build-flag", "extra go build flag, e.g. --build-flag=-race (repeatable)")
	fs.StringVar(&cfg.OutDir, "out", "", "directory for the built binaries, outside --dir (default: a new temporary directory, removed at exit)")
	fs.StringVar(&cfg.Watch, "watch", cfg.Watch, "auto (polling plus inotify where the mount raises events), poll, or inotify")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", cfg.PollInterval, "time between two scans of the source tree")
	fs.DurationVar(&cfg.Debounce, "debounce", cfg.Debounce, "quiet time that ends a burst of saves, which then makes one build")
	fs.Var(&excludes, "exclude", "glob of files or directories not to watch, matched against the base name or the path relative to --dir (repeatable, or comma-separated; always excluded: "+strings.Join(reload.DefaultExcludes(), " ")+")")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", cfg.ReadyTimeout, "longest wait for a new app to accept connections before the old one is stopped anyway")
	fs.DurationVar(&cfg.StopTimeout, "stop-timeout", cfg.StopTimeout, "time an old app gets to finish its requests after SIGTERM before SIGKILL")
	// The flag package calls Usage on every parse error too; print it only
	// on request, and one line otherwise.
	fs.Usage = func() {}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
			return cfg, err
		}
		return cfg, fmt.Errorf("%w (see --help)", err)
	}
	if err := fromEnv(fs, getenv); err != nil {
		return cfg, err
	}
	if err := portAddr(&cfg, fs, getenv); err != nil {
		return cfg, err
	}
	if ldflags != "" {
		cfg.BuildFlags = append(cfg.BuildFlags, "-ldflags="+ldflags)
	}
	if tags != "" {
		cfg.BuildFlags = append(cfg.BuildFlags, "-tags="+tags)
	}
	cfg.BuildFlags = append(cfg.BuildFlags, buildFlags.items...)
	cfg.Excludes = excludes.items
	cfg.AppArgs = fs.Args()
	return cfg, nil
}

// portAddr makes the reloader listen on :$PORT when PORT, the app's port
// setting, is set and the reloader's address is not: the reloader holds
// the app's socket, so that is where the app is expected.
func portAddr(cfg *reload.Config, fs *flag.FlagSet, getenv func(string) string) error {
	port := getenv("PORT")
	if port == "" || getenv(envName("addr")) != "" {
		return nil
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "addr" })
	if given {
		return nil
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid PORT %q: must be a whole number from 0 to 65535 (or set --addr)", port)
	}
	cfg.Addr = ":" + port
	return nil
}

// fromEnv sets every flag not given on the command line from HOTRELOAD_<NAME>.
func fromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if setErr := f.Value.Set(v); setErr != nil {
				err = fmt.Errorf("invalid value %q for %s (flag --%s): %w", v, name, f.Name, setErr)
			}
		}
	})
	return err
}

func envName(flagName string) string {
	return "HOTRELOAD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func usage(out io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(out, `Usage: hotreload [flags] [-- app arguments]

Builds the Go package --pkg of the module in --dir, runs it, and on every
saved change rebuilds it and replaces the running process. The port is bound
once and never closed: each new process gets the listening socket as fd 3
(LISTEN_FDS/LISTEN_PID, systemd socket activation), the old one is stopped
with SIGTERM once the new one accepts, and no connection is ever refused.
A failed build, or an app that exits, makes every request answer 500 with
the compiler or crash output until the next good build. The binaries are
written to --out, never into the source tree. SIGTERM or SIGINT stops the
app gracefully, then the reloader, with exit status 0.

PORT, the app's port setting, moves the reloader to :$PORT when neither
--addr nor HOTRELOAD_ADDR is set (PORT=8081 make dev-local): the app
serves on the reloader's socket whatever its own port.

Flags (each also read from the environment variable shown; a flag wins):
`)
	fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(out, "  --%s\n      %s\n      env %s, default %s\n", f.Name, f.Usage, envName(f.Name), def)
	})
	fmt.Fprint(out, "  --help\n      print this help and exit\n")
}
