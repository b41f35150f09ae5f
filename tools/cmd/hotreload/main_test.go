package main

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/dev/reload"
)

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestPortMovesTheReloaderUnlessItsAddressIsSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"neither", nil, nil, ":5000"},
		{"PORT alone", nil, map[string]string{"PORT": "8081"}, ":8081"},
		{"--addr wins", []string{"--addr=127.0.0.1:9000"}, map[string]string{"PORT": "8081"}, "127.0.0.1:9000"},
		{"HOTRELOAD_ADDR wins", nil, map[string]string{"PORT": "8081", "HOTRELOAD_ADDR": ":7000"}, ":7000"},
		{"--addr over HOTRELOAD_ADDR", []string{"--addr", ":6000"}, map[string]string{"HOTRELOAD_ADDR": ":7000"}, ":6000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse(tc.args, env(tc.env), &strings.Builder{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Addr != tc.want {
				t.Errorf("address %q, want %q", cfg.Addr, tc.want)
			}
		})
	}
}

func TestInvalidPortIsAnError(t *testing.T) {
	_, err := parse(nil, env(map[string]string{"PORT": "http"}), &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), `PORT "http"`) {
		t.Fatalf("PORT=http: got %v, want an error naming PORT and its value", err)
	}
}

func TestHelpSaysWhatPortDoes(t *testing.T) {
	var out strings.Builder
	_, err := parse([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"PORT", ":$PORT", "HOTRELOAD_ADDR", "default :5000"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDefaultsAreTheReloaders(t *testing.T) {
	cfg, err := parse(nil, env(nil), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	def := reload.DefaultConfig()
	if cfg.Addr != def.Addr || cfg.Dir != def.Dir || cfg.Package != def.Package || cfg.GoCmd != def.GoCmd ||
		cfg.Watch != def.Watch || cfg.PollInterval != def.PollInterval || cfg.Debounce != def.Debounce ||
		cfg.ReadyTimeout != def.ReadyTimeout || cfg.StopTimeout != def.StopTimeout {
		t.Errorf("flag defaults %+v differ from reload.DefaultConfig() %+v", cfg, def)
	}
	if !slices.Equal(cfg.BuildFlags, []string{"-ldflags=-s -w"}) {
		t.Errorf("build flags %q, want the default -ldflags", cfg.BuildFlags)
	}
}

func TestEnvironmentSetsWhatFlagsDoNot(t *testing.T) {
	cfg, err := parse([]string{"--watch=inotify", "--", "--log-format=text"},
		env(map[string]string{"HOTRELOAD_WATCH": "poll", "HOTRELOAD_POLL_INTERVAL": "1s", "HOTRELOAD_EXCLUDE": "a, b"}), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Watch != reload.WatchInotify {
		t.Errorf("watch %q: the flag must win over HOTRELOAD_WATCH", cfg.Watch)
	}
	if cfg.PollInterval != time.Second {
		t.Errorf("poll interval %s, want HOTRELOAD_POLL_INTERVAL's 1s", cfg.PollInterval)
	}
	if !slices.Equal(cfg.Excludes, []string{"a", "b"}) || !slices.Equal(cfg.AppArgs, []string{"--log-format=text"}) {
		t.Errorf("excludes %q, app args %q", cfg.Excludes, cfg.AppArgs)
	}
	if _, err := parse(nil, env(map[string]string{"HOTRELOAD_DEBOUNCE": "soon"}), &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "HOTRELOAD_DEBOUNCE") {
		t.Errorf("a bad HOTRELOAD_DEBOUNCE: got %v, want an error naming it", err)
	}
}
