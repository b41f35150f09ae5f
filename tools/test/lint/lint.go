// Package lint checks the Kubernetes manifests with kube-score, built from the
// Go module proxy into a cache outside the repository (never a dependency of
// the project's module), with the settings of k8s/kube-score.conf.
package lint

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/gotool"
	"scalable-app/tools/internal/kubectl"
)

// ConfigPath is the settings file, relative to the repository root.
const ConfigPath = "k8s/kube-score.conf"

const module = "github.com/zegl/kube-score/cmd/kube-score"

// Config is the parsed settings file.
type Config struct {
	Version           string
	KubernetesVersion string
	Enable            []string
	Ignore            map[string]string // check -> reason
}

// ReadConfig parses the settings file; an `ignore` without a reason is an error.
func ReadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read linter settings: %w", err)
	}
	c := Config{Ignore: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, reason, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return Config{}, fmt.Errorf("%s:%d: want `setting value`, got %q", path, n, strings.TrimSpace(line))
		}
		switch f[0] {
		case "version":
			c.Version = f[1]
		case "kubernetes-version":
			c.KubernetesVersion = f[1]
		case "enable":
			c.Enable = append(c.Enable, f[1])
		case "ignore":
			if strings.TrimSpace(reason) == "" {
				return Config{}, fmt.Errorf("%s:%d: ignore %s has no reason after #", path, n, f[1])
			}
			c.Ignore[f[1]] = strings.TrimSpace(reason)
		default:
			return Config{}, fmt.Errorf("%s:%d: unknown setting %q", path, n, f[0])
		}
	}
	if c.Version == "" {
		return Config{}, fmt.Errorf("%s: no `version` line", path)
	}
	return c, nil
}

// Binary returns the path of kube-score at the configured version, built
// once into the tools cache.
func Binary(ctx context.Context, run *command.Runner, c Config, logf func(string, ...any)) (string, error) {
	return gotool.Build(ctx, run, gotool.Tool{Package: module, Version: c.Version, About: "about a minute"}, logf)
}

// Finding is one check that did not pass.
type Finding struct {
	Level string // CRITICAL or WARNING
	Line  string
}

// Score runs kube-score on files and returns its CRITICAL and WARNING lines.
func Score(ctx context.Context, run *command.Runner, bin string, c Config, files []string) ([]Finding, string, error) {
	args := []string{"score", "--output-format", "ci", "--color", "never"}
	if c.KubernetesVersion != "" {
		args = append(args, "--kubernetes-version", c.KubernetesVersion)
	}
	for _, e := range c.Enable {
		args = append(args, "--enable-optional-test", e)
	}
	for check := range c.Ignore {
		args = append(args, "--ignore-test", check)
	}
	args = append(args, files...)
	stdout, err := run.Output(ctx, "lint the manifests with kube-score", bin, args...)
	// kube-score exits 1 when it finds a critical issue: judge by its output.
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || len(stdout) == 0) {
		return nil, "", err
	}
	var fs []Finding
	for _, line := range strings.Split(string(stdout), "\n") {
		for _, lvl := range []string{"CRITICAL", "WARNING"} {
			if strings.HasPrefix(line, "["+lvl+"]") {
				fs = append(fs, Finding{Level: lvl, Line: line})
			}
		}
	}
	return fs, string(stdout), nil
}

// Inputs returns the files to lint: the base manifests as they are applied with
// `kubectl apply -f`, and each overlay and k8s/monitoring rendered by
// `kubectl kustomize` into dir.
func Inputs(ctx context.Context, k kubectl.Kubectl, repoRoot, dir string) ([]string, error) {
	files := []string{}
	for _, f := range []string{"deployment.yaml", "service.yaml", "ingress.yaml", "pdb.yaml", "postgres.yaml"} {
		files = append(files, filepath.Join(repoRoot, "k8s", f))
	}
	kustomizations := map[string]string{"monitoring": filepath.Join(repoRoot, "k8s", "monitoring")}
	for _, o := range Overlays() {
		kustomizations["overlay-"+o] = filepath.Join(repoRoot, "k8s", "overlays", o)
	}
	for _, name := range slices.Sorted(maps.Keys(kustomizations)) {
		src := kustomizations[name]
		out, err := k.Output(ctx, "kustomize", src)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			return nil, fmt.Errorf("write rendered %s: %w", name, err)
		}
		files = append(files, path)
	}
	return files, nil
}

// Overlays names the environments under k8s/overlays.
func Overlays() []string { return []string{"test", "prod"} }
