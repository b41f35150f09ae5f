// Package config reads scalable-app's settings from command-line flags and
// environment variables. Every setting has both; a flag beats the environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Config holds every setting of the service.
type Config struct {
	Host string
	Port int

	LogFormat string // "json" or "text"
	LogLevel  string // "debug", "info", "warn" or "error"
	AccessLog bool

	// Instance names this process in the X-Instance response header.
	// Empty means the host name, which in Kubernetes is the pod name.
	Instance string

	DrainDelay      time.Duration
	ShutdownTimeout time.Duration

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int

	ShowVersion bool
}

// Addr is the address to listen on.
func (c Config) Addr() string {
	return c.Host + ":" + strconv.Itoa(c.Port)
}

// ErrHelp is returned by Parse after it printed the usage on request.
var ErrHelp = flag.ErrHelp

// Parse reads args (without the program name) and the environment through
// getenv. On -h or --help it writes the usage to out and returns ErrHelp.
// Errors are one line, naming the setting and the bad value.
func Parse(program string, args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	// The flag package would print the error and the whole usage on a bad
	// value; callers print one line instead.
	fs.SetOutput(io.Discard)

	fs.StringVar(&c.Host, "host", "", "interface to listen on (empty: all)")
	intVar(fs, &c.Port, "port", 5000, 0, 65535, "TCP port to listen on (0: any free port)")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", "info", "minimum log level: debug, info, warn or error")
	fs.BoolVar(&c.AccessLog, "access-log", true, "log one line per request")
	fs.StringVar(&c.Instance, "instance", "", "instance name sent in the X-Instance header (default: POD_NAME, else the host name)")
	durationVar(fs, &c.DrainDelay, "drain-delay", 0, "on SIGTERM, time to keep serving with /readyz failing before shutdown starts")
	durationVar(fs, &c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "time allowed for requests in flight to finish at shutdown")
	durationVar(fs, &c.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "time allowed to read request headers")
	durationVar(fs, &c.ReadTimeout, "read-timeout", 10*time.Second, "time allowed to read a whole request")
	durationVar(fs, &c.WriteTimeout, "write-timeout", 10*time.Second, "time allowed to write a response")
	durationVar(fs, &c.IdleTimeout, "idle-timeout", 120*time.Second, "time a keep-alive connection may stay idle")
	intVar(fs, &c.MaxHeaderBytes, "max-header-bytes", 16<<10, 1024, 1<<20, "largest request header accepted; larger gets 431")
	fs.BoolVar(&c.ShowVersion, "version", false, "print the version and exit")

	// The flag package calls Usage on every parse error; print it only
	// when asked for.
	fs.Usage = func() {}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(out, program, fs)
			return c, ErrHelp
		}
		return c, errors.New(flagError(err))
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (settings are flags, see --help)", fs.Arg(0))
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil || set[f.Name] || f.Name == "version" {
			return
		}
		name := EnvName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			envErr = fmt.Errorf("invalid value %q for %s: %w", v, name, err)
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if c.Instance == "" {
		c.Instance = getenv("POD_NAME")
	}
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.LogFormat != "json" && c.LogFormat != "text":
		return fmt.Errorf("invalid log format %q: must be json or text", c.LogFormat)
	case !oneOf(c.LogLevel, "debug", "info", "warn", "error"):
		return fmt.Errorf("invalid log level %q: must be debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// EnvName is the environment variable that sets the flag of the given name.
func EnvName(flagName string) string {
	return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagError rewrites the flag package's messages to name flags as --help
// shows them.
func flagError(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Sprintf("unknown flag --%s (see --help)", strings.TrimPrefix(name, "-"))
	}
	return strings.Replace(msg, "for flag -", "for --", 1)
}

// intVar defines an integer flag whose error names the accepted range, where
// the flag package would only say "parse error".
func intVar(fs *flag.FlagSet, p *int, name string, def, lo, hi int, usage string) {
	*p = def
	fs.Func(name, usage, func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
		}
		*p = n
		return nil
	})
	fs.Lookup(name).DefValue = strconv.Itoa(def)
}

// durationVar defines a non-negative duration flag with a helpful error.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Func(name, usage, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return errors.New("must be a duration such as 500ms, 5s or 1m")
		}
		*p = d
		return nil
	})
	fs.Lookup(name).DefValue = def.String()
}

func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func usage(out io.Writer, program string, fs *flag.FlagSet) {
	fmt.Fprintf(out, "Usage: %s [flags]\n\n", program)
	fmt.Fprintf(out, "Serves \"Hello from Kubernetes\" on GET /, with /healthz, /readyz and /metrics.\n")
	fmt.Fprintf(out, "Each flag can also be set by the environment variable shown; a flag beats the environment.\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		if f.Name == "version" {
			env = ""
		}
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(out, "  --%-20s %s\n", f.Name, f.Usage)
		if env != "" {
			fmt.Fprintf(out, "  %-22s env %s, default %s\n", "", env, def)
		}
	})
	fmt.Fprintf(out, "  --%-20s %s\n", "help", "print this help and exit")
}
