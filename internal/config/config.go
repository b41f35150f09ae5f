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

	// MetricsPort serves /metrics apart from the public port. MetricsPortSet
	// tells whether a flag or the environment chose it: on an inherited
	// socket the default becomes any free port (see run).
	MetricsPort    int
	MetricsPortSet bool

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
	// MaxConns caps open connections; 0 means derive it from the memory
	// limit (see run).
	MaxConns int

	// The database (its address comes from DATABASE_URL or the PG*
	// variables, read by the store): pool size and the bound on each
	// operation, its wait for a connection included.
	DBMaxConns     int
	DBQueryTimeout time.Duration
	// ModeratorToken lets DELETE /api/messages/{id} through; empty turns
	// deletion off.
	ModeratorToken string

	ShowVersion bool
}

// Addr is the address to listen on.
func (c Config) Addr() string {
	return c.Host + ":" + strconv.Itoa(c.Port)
}

// MetricsAddr is the address of the metrics listener.
func (c Config) MetricsAddr() string {
	return c.Host + ":" + strconv.Itoa(c.MetricsPort)
}

// LongestRequest is the most time a request may take: net/http arms the
// write deadline once the headers are read, and the body must be read within
// the read timeout counted from the start of the request.
func (c Config) LongestRequest() time.Duration {
	return max(c.ReadTimeout, c.ReadHeaderTimeout+c.WriteTimeout)
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

	fs.StringVar(&c.Host, "host", "", "interface to listen on, for both ports (empty: all)")
	intVar(fs, &c.Port, "port", 5000, 0, 65535, "TCP port of the service (0: any free port)")
	intVar(fs, &c.MetricsPort, "metrics-port", 9090, 0, 65535,
		"TCP port of /metrics, kept off the public port (0: any free port, the default on an inherited socket)")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", "info", "minimum log level: debug, info, warn or error (any case)")
	boolVar(fs, &c.AccessLog, "access-log", true, "log one line per request (dropped, and counted, when stdout falls behind)")
	fs.StringVar(&c.Instance, "instance", "", "instance name sent in the X-Instance header (default: POD_NAME, else the host name)")
	durationVar(fs, &c.DrainDelay, "drain-delay", 0, true, "on SIGTERM, time to keep serving with /readyz failing before shutdown starts")
	durationVar(fs, &c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, false,
		"time allowed for requests in flight to finish at shutdown; must exceed max(read-timeout, read-header-timeout + write-timeout)")
	durationVar(fs, &c.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, false, "time allowed to read request headers")
	durationVar(fs, &c.ReadTimeout, "read-timeout", 10*time.Second, false, "time allowed to read a whole request")
	durationVar(fs, &c.WriteTimeout, "write-timeout", 10*time.Second, false, "time allowed to write a response, from the end of its request's headers")
	durationVar(fs, &c.IdleTimeout, "idle-timeout", 120*time.Second, false, "time a keep-alive connection may stay idle")
	intVar(fs, &c.MaxHeaderBytes, "max-header-bytes", 16<<10, 8<<10, 1<<20,
		"largest request line and headers accepted, in bytes; larger gets 431")
	intVar(fs, &c.MaxConns, "max-conns", 0, 16, 1<<20,
		"most open connections; at the cap the one idle longest is closed to admit a new one (default: the memory limit, GOMEMLIMIT or the cgroup's, / 64 KiB; else 10000)")
	fs.Lookup("max-conns").DefValue = "from the memory limit"
	intVar(fs, &c.DBMaxConns, "db-max-conns", 10, 1, 1000,
		"most connections to the database per instance (replicas x this must stay under the server's max_connections)")
	durationVar(fs, &c.DBQueryTimeout, "db-query-timeout", time.Second, false,
		"time allowed for a database operation, waiting for a connection included; then /api answers 503 (with a database, must be below --write-timeout)")
	fs.StringVar(&c.ModeratorToken, "moderator-token", "",
		"bearer token of DELETE /api/messages/{id}, at least 16 characters (empty: deletion off); prefer the environment, a flag shows in ps")
	boolVar(fs, &c.ShowVersion, "version", false, "print the version and exit")

	// The flag package calls Usage on every parse error; print it only
	// when asked for.
	fs.Usage = func() {}

	if err := fs.Parse(joinBoolValues(fs, args)); err != nil {
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
	source := func(name string) string {
		if set[name] {
			return "--" + name
		}
		return EnvName(name)
	}
	fromEnv := map[string]bool{}
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
		fromEnv[f.Name] = true
		if err := f.Value.Set(v); err != nil {
			envErr = fmt.Errorf("invalid value %q for %s: %w", v, name, err)
		}
	})
	if envErr != nil {
		return c, envErr
	}
	c.MetricsPortSet = set["metrics-port"] || fromEnv["metrics-port"]
	if c.Instance == "" {
		c.Instance = getenv("POD_NAME")
	}
	return c, c.validate(source)
}

// validate checks what single values cannot show; source names the flag or
// variable a setting came from.
func (c *Config) validate(source func(string) string) error {
	c.LogFormat = strings.ToLower(c.LogFormat)
	// A Secret made from a file often ends in a newline.
	c.ModeratorToken = strings.TrimSpace(c.ModeratorToken)
	c.LogLevel = strings.ToLower(c.LogLevel)
	switch {
	case c.LogFormat != "json" && c.LogFormat != "text":
		return fmt.Errorf("invalid log format %q for %s: must be json or text", c.LogFormat, source("log-format"))
	case !oneOf(c.LogLevel, "debug", "info", "warn", "error"):
		return fmt.Errorf("invalid log level %q for %s: must be debug, info, warn or error", c.LogLevel, source("log-level"))
	case c.ModeratorToken != "" && !isBearerToken(c.ModeratorToken):
		return fmt.Errorf("invalid moderator token in %s: it must be at least 16 characters of A-Z a-z 0-9 - . _ ~ + / (optionally ending in =), such as the output of `openssl rand -hex 32`",
			source("moderator-token"))
	case c.ShutdownTimeout <= c.LongestRequest():
		return fmt.Errorf("%s %s is too short: a request may take up to %s (read-timeout %s, or read-header-timeout %s + write-timeout %s), so raise it above that or lower those",
			source("shutdown-timeout"), c.ShutdownTimeout, c.LongestRequest(), c.ReadTimeout, c.ReadHeaderTimeout, c.WriteTimeout)
	}
	return nil
}

// isBearerToken: RFC 6750's token68 characters, long enough not to be
// guessed.
func isBearerToken(s string) bool {
	body := strings.TrimRight(s, "=")
	if len(body) < 16 {
		return false
	}
	for _, r := range body {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._~+/", r)) {
			return false
		}
	}
	return true
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
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Sprintf("flag --%s needs a value, as in --%s=VALUE (see --help)", name, name)
	}
	if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		return "invalid value " + strings.Replace(rest, " for -", " for --", 1)
	}
	return strings.Replace(msg, "for flag -", "for --", 1)
}

// joinBoolValues turns "--access-log false" into "--access-log=false": the
// flag package would take "false" as a stray argument, since a boolean flag
// alone means true. The service takes no arguments, so nothing is lost.
func joinBoolValues(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name := strings.TrimLeft(a, "-")
		if f := fs.Lookup(name); f != nil && name != a && len(a)-len(name) <= 2 && i+1 < len(args) {
			if b, ok := f.Value.(*boolValue); ok && b.isLiteral(args[i+1]) {
				out = append(out, a+"="+args[i+1])
				i++
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// boolValue is a boolean flag whose error lists the accepted values.
type boolValue struct{ p *bool }

func boolVar(fs *flag.FlagSet, p *bool, name string, def bool, usage string) {
	*p = def
	fs.Var(&boolValue{p}, name, usage)
}

func (b *boolValue) IsBoolFlag() bool { return true }

func (b *boolValue) String() string {
	if b.p == nil {
		return "false"
	}
	return strconv.FormatBool(*b.p)
}

func (b *boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("must be true or false (1, 0, t, f, TRUE, FALSE also work)")
	}
	*b.p = v
	return nil
}

func (b *boolValue) isLiteral(s string) bool {
	_, err := strconv.ParseBool(s)
	return err == nil
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

// durationVar defines a duration flag with a helpful error. Zero is refused
// unless zeroOK: net/http reads a zero timeout as none, which would silently
// turn a protection off.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, zeroOK bool, usage string) {
	*p = def
	if !zeroOK {
		usage += " (above 0)"
	}
	fs.Func(name, usage, func(s string) error {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil || d < 0:
			return errors.New("must be a duration such as 500ms, 5s or 1m")
		case d == 0 && !zeroOK:
			return errors.New("must be above zero (zero would turn this protection off), such as 500ms, 5s or 1m")
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
	fmt.Fprintf(out, "Serves \"Hello from Kubernetes\" on GET /, with /healthz and /readyz, on --port;\n")
	fmt.Fprintf(out, "/metrics on --metrics-port. With a PostgreSQL database (DATABASE_URL, or PGHOST, PGUSER,\n")
	fmt.Fprintf(out, "PGPASSWORD, PGDATABASE...), the guestbook on /api/messages and /guestbook.\n")
	fmt.Fprintf(out, "Each flag can also be set by the environment variable shown; a flag beats the environment.\n")
	fmt.Fprintf(out, "Booleans take any of --access-log, --access-log=false, --access-log false.\n\n")
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
