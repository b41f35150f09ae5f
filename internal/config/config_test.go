package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func parse(args []string, env map[string]string) (Config, error) {
	return Parse("scalable-app", args, func(k string) string { return env[k] }, io.Discard)
}

func TestBooleanForms(t *testing.T) {
	for _, args := range [][]string{
		{"--access-log=false"}, {"--access-log", "false"}, {"-access-log", "0"}, {"--access-log", "FALSE"},
	} {
		c, err := parse(args, nil)
		if err != nil || c.AccessLog {
			t.Errorf("%q: AccessLog = %v, err %v; want false, nil", args, c.AccessLog, err)
		}
	}
	if c, err := parse([]string{"--access-log"}, map[string]string{"ACCESS_LOG": "false"}); err != nil || !c.AccessLog {
		t.Errorf("bare --access-log over ACCESS_LOG=false: %v, %v; want true", c.AccessLog, err)
	}
	if _, err := parse([]string{"--access-log", "serve"}, nil); err == nil || !strings.Contains(err.Error(), `unexpected argument "serve"`) {
		t.Errorf("--access-log serve: %v", err)
	}
}

func TestMessagesNameTheSettingAndTheChoices(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"ACCESS_LOG": "yes"}, `invalid value "yes" for ACCESS_LOG: must be true or false`},
		{[]string{"--access-log=yes"}, nil, `invalid value "yes" for --access-log: must be true or false`},
		{nil, map[string]string{"LOG_FORMAT": "xml"}, `invalid log format "xml" for LOG_FORMAT: must be json or text`},
		{[]string{"--log-format", "xml"}, nil, `invalid log format "xml" for --log-format`},
		{[]string{"--log-level", "loud"}, nil, `invalid log level "loud" for --log-level: must be debug, info, warn or error`},
		{nil, map[string]string{"LOG_LEVEL": "loud"}, `invalid log level "loud" for LOG_LEVEL`},
		{[]string{"--port"}, nil, "flag --port needs a value"},
		{nil, map[string]string{"READ_HEADER_TIMEOUT": "0"}, `invalid value "0" for READ_HEADER_TIMEOUT: must be above zero`},
		{nil, map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, `invalid value "0s" for SHUTDOWN_TIMEOUT: must be above zero`},
		{[]string{"--write-timeout", "0"}, nil, `invalid value "0" for --write-timeout: must be above zero`},
		{[]string{"--idle-timeout", "0"}, nil, `for --idle-timeout: must be above zero`},
		{[]string{"--read-timeout", "0"}, nil, `for --read-timeout: must be above zero`},
		{[]string{"--max-conns", "0"}, nil, `invalid value "0" for --max-conns: must be a whole number from 16`},
		{[]string{"--max-header-bytes", "4096"}, nil, `invalid value "4096" for --max-header-bytes: must be a whole number from 8192`},
		{nil, map[string]string{"SHUTDOWN_TIMEOUT": "10s"}, "SHUTDOWN_TIMEOUT 10s is too short: a request may take up to 15s"},
		{[]string{"--shutdown-timeout", "12s", "--read-timeout", "12s", "--read-header-timeout", "1s", "--write-timeout", "5s"}, nil,
			"--shutdown-timeout 12s is too short: a request may take up to 12s"},
	}
	for _, tt := range tests {
		_, err := parse(tt.args, tt.env)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q %v: err = %v, want one line containing %q", tt.args, tt.env, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), " -port") {
			t.Errorf("%q: %v names -port, --help says --port", tt.args, err)
		}
	}
}

func TestAnyCaseAndZeroDrainDelay(t *testing.T) {
	c, err := parse(nil, map[string]string{"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "Text", "DRAIN_DELAY": "0"})
	if err != nil || c.LogLevel != "debug" || c.LogFormat != "text" {
		t.Fatalf("LOG_LEVEL=DEBUG LOG_FORMAT=Text: %+v, %v", c, err)
	}
}

func TestDefaultsHoldTheTimeoutArithmetic(t *testing.T) {
	c, err := parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ShutdownTimeout <= c.LongestRequest() || c.LongestRequest() != 15*time.Second {
		t.Fatalf("shutdown timeout %s, longest request %s", c.ShutdownTimeout, c.LongestRequest())
	}
	if c.MetricsPort != 9090 || c.MetricsPortSet || c.MaxConns != 0 {
		t.Fatalf("metrics port %d (set %v), max conns %d", c.MetricsPort, c.MetricsPortSet, c.MaxConns)
	}
	if c, _ := parse(nil, map[string]string{"METRICS_PORT": "9090"}); !c.MetricsPortSet {
		t.Fatal("METRICS_PORT=9090 not seen as set")
	}
}

func TestHelpTellsTheNewSettings(t *testing.T) {
	var out strings.Builder
	if _, err := Parse("scalable-app", []string{"--help"}, func(string) string { return "" }, &out); err != ErrHelp {
		t.Fatal(err)
	}
	for _, want := range []string{"--metrics-port", "env METRICS_PORT, default 9090", "--max-conns",
		"env MAX_CONNS, default from the memory limit", "--access-log false", "env SHUTDOWN_TIMEOUT, default 20s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDatabaseSettings(t *testing.T) {
	c, err := parse(nil, nil)
	if err != nil || c.DBMaxConns != 10 || c.DBQueryTimeout != time.Second || c.ModeratorToken != "" {
		t.Fatalf("defaults: %d, %s, %q, %v", c.DBMaxConns, c.DBQueryTimeout, c.ModeratorToken, err)
	}
	const token = "0123456789abcdef0123456789abcdef"
	c, err = parse([]string{"--db-max-conns", "3"}, map[string]string{"DB_QUERY_TIMEOUT": "250ms", "MODERATOR_TOKEN": token + "\n"})
	if err != nil || c.DBMaxConns != 3 || c.DBQueryTimeout != 250*time.Millisecond || c.ModeratorToken != token {
		t.Fatalf("set: %d, %s, %q, %v", c.DBMaxConns, c.DBQueryTimeout, c.ModeratorToken, err)
	}
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DB_MAX_CONNS": "0"}, `invalid value "0" for DB_MAX_CONNS: must be a whole number from 1 to 1000`},
		{map[string]string{"DB_QUERY_TIMEOUT": "0"}, `invalid value "0" for DB_QUERY_TIMEOUT: must be above zero`},
		{map[string]string{"MODERATOR_TOKEN": "short"}, "invalid moderator token in MODERATOR_TOKEN: it must be at least 16 characters"},
		{map[string]string{"MODERATOR_TOKEN": "with space in the middle of it"}, "invalid moderator token in MODERATOR_TOKEN"},
	} {
		_, err := parse(nil, tt.env)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.env, err, tt.want)
		}
		if err != nil && tt.env["MODERATOR_TOKEN"] != "" && strings.Contains(err.Error(), tt.env["MODERATOR_TOKEN"]) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
}
