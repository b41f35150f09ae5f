package gotool

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"scalable-app/tools/internal/command"
)

// A miss builds with `go install` at the pin, with the tool's toolchain and
// settings, into a cache entry; the next call finds it and runs nothing. A
// failed build leaves no entry that would look like a hit.
func TestBuildCachesPerVersion(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	tool := Tool{Package: "example.com/x/cmd/scanner", Version: "v1.2.3", Toolchain: "go1.27.3", Env: []string{"GOEXPERIMENT=jsonv2"}, Ldflags: "-X main.v=v1.2.3"}
	fail := false
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		if fail {
			return "", errors.New("exit status 1")
		}
		for _, e := range c.Env {
			if dir, ok := strings.CutPrefix(e, "GOBIN="); ok {
				return "", os.WriteFile(filepath.Join(dir, "scanner"), []byte("#!/bin/true\n"), 0o755)
			}
		}
		return "", errors.New("no GOBIN")
	}}
	run := command.New(fake, io.Discard)
	logf := func(string, ...any) {}

	fail = true
	if _, err := Build(context.Background(), run, tool, logf); err == nil {
		t.Fatal("a failed build returned no error")
	}
	fail = false
	bin, err := Build(context.Background(), run, tool, logf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil || !strings.Contains(bin, "/scanner-v1.2.3-go1.27.3-") {
		t.Fatalf("built %s (%v), want a file in the cache entry scanner-v1.2.3-go1.27.3", bin, err)
	}
	calls := fake.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d commands, want 2 (the failed build and the good one)", len(calls))
	}
	c := calls[1]
	wantArgs := []string{"install", "-trimpath", "-ldflags", "-s -w -X main.v=v1.2.3", "example.com/x/cmd/scanner@v1.2.3"}
	if !slices.Equal(c.Args, wantArgs) || !slices.Contains(c.Env, "GOTOOLCHAIN=go1.27.3") || !slices.Contains(c.Env, "GOEXPERIMENT=jsonv2") {
		t.Errorf("build command = %s %v, want go %v with the toolchain and GOEXPERIMENT", c.Line(), c.Env, wantArgs)
	}
	again, err := Build(context.Background(), run, tool, logf)
	if err != nil || again != bin || len(fake.Calls()) != 2 {
		t.Errorf("second Build = %s, %v after %d commands: want the cached %s and no command", again, err, len(fake.Calls()), bin)
	}
	tool.Version = "v1.2.4"
	if _, err := Build(context.Background(), run, tool, logf); err != nil || len(fake.Calls()) != 3 {
		t.Errorf("a new pin did not build: %v, %d commands", err, len(fake.Calls()))
	}
	tool.Ldflags = "-X main.v=1.2.4"
	if _, err := Build(context.Background(), run, tool, logf); err != nil || len(fake.Calls()) != 4 {
		t.Errorf("new build settings did not build: %v, %d commands", err, len(fake.Calls()))
	}
}

func TestServiceToolchain(t *testing.T) {
	got, err := ServiceToolchain(filepath.Join("..", "..", ".."))
	if err != nil || !strings.HasPrefix(got, "go1.") {
		t.Errorf("ServiceToolchain = %q, %v", got, err)
	}
	if _, err := ServiceToolchain(t.TempDir()); err == nil {
		t.Error("no go.mod: no error")
	}
}
