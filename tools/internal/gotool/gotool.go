// Package gotool builds the third-party Go programs the tooling runs on this
// machine (kube-score, govulncheck, Trivy, ...) from the Go module proxy, at
// a pinned version, into a cache outside any checkout: one directory per
// program and version, so a fresh clone reuses it and a new pin builds anew.
package gotool

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"scalable-app/tools/internal/cachedir"
	"scalable-app/tools/internal/command"
)

// Tool is one program and how it is built.
type Tool struct {
	Package string // its main package, e.g. golang.org/x/vuln/cmd/govulncheck
	Version string // the version of the package's module on the proxy
	// Toolchain, when set, is the Go that builds it (go1.27.3): a program
	// that loads Go code (govulncheck) must be as new as that code's go line.
	Toolchain string
	Env       []string // more build settings: GOEXPERIMENT=jsonv2
	Ldflags   string   // added to -s -w: the version stamp upstream's release build sets
	About     string   // how long a cold build takes, for the progress line
}

// Name is the program's file name: the last element of its package path.
func (t Tool) Name() string { return path.Base(t.Package) }

// CacheDir is where built programs are kept, under the user's cache directory.
func CacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory for the tools: %w", err)
	}
	return filepath.Join(dir, "scalable-app", "tools"), nil
}

// Build returns the path of t's program, building it on a cache miss with
// `go install` outside any module, so the checkout's go.mod has no say in
// it and the program's own go.sum is checked.
func Build(ctx context.Context, run *command.Runner, t Tool, logf func(string, ...any)) (string, error) {
	root, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, t.key())
	bin := filepath.Join(dir, t.Name())
	if cachedir.Complete(dir) {
		return bin, nil
	}
	about := t.About
	if about == "" {
		about = "seconds"
	}
	logf("building %s %s into %s (%s, once)", t.Name(), t.Version, dir, about)
	start := time.Now()
	err = cachedir.Fill(dir, func(tmp string) error {
		env := append([]string{"GOBIN=" + tmp, "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0"}, t.Env...)
		if t.Toolchain != "" {
			env = append(env, "GOTOOLCHAIN="+t.Toolchain)
		}
		_, err := run.Exec(ctx, command.Cmd{
			What: "build " + t.Name() + " " + t.Version, Name: "go",
			Args: []string{"install", "-trimpath", "-ldflags", strings.TrimSpace("-s -w " + t.Ldflags), t.Package + "@" + t.Version},
			Dir:  os.TempDir(), Env: env,
		})
		return err
	})
	if err != nil {
		return "", err
	}
	logf("built %s %s in %s", t.Name(), t.Version, time.Since(start).Round(time.Second))
	return bin, nil
}

// key names the cache entry: the program, its version and toolchain, and a
// digest of the other settings, so changing any of them builds anew.
func (t Tool) key() string {
	key := t.Name() + "-" + t.Version
	if t.Toolchain != "" {
		key += "-" + t.Toolchain
	}
	if len(t.Env) > 0 || t.Ldflags != "" {
		sum := sha256.Sum256([]byte(strings.Join(t.Env, "\n") + "\n" + t.Ldflags))
		key += fmt.Sprintf("-%x", sum[:4])
	}
	return key
}

// ServiceToolchain returns the Go release the service's go.mod asks for
// ("go1.27.3"), for a tool that must read the service's code.
func ServiceToolchain(repoRoot string) (string, error) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("read the service's go.mod: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return "go" + strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("the service's go.mod has no go line")
}
