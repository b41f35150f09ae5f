package scan

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Severities are Trivy's, from the least.
var Severities = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// Fails says whether a finding stops the scan at threshold (a severity).
// govulncheck's findings have no severity and are code that calls a
// vulnerable function: they always fail. A vulnerability Trivy cannot grade
// (UNKNOWN: the Go database grades none) fails too, as nothing shows it is
// harmless.
func Fails(f Finding, threshold string) bool {
	if f.Severity == "" || f.Severity == "UNKNOWN" {
		return true
	}
	return slices.Index(Severities, f.Severity) >= slices.Index(Severities, threshold)
}

// ValidThreshold checks a --fail-on value.
func ValidThreshold(s string) error {
	if slices.Index(Severities, s) < 1 {
		return fmt.Errorf("--fail-on %q: want one of LOW, MEDIUM, HIGH, CRITICAL", s)
	}
	return nil
}

// Summarize writes one table of the results and, below it, every failing
// finding, and returns how many fail.
func Summarize(w io.Writer, results []Result, threshold, out string) int {
	fmt.Fprintf(w, "\n| Scan | Target | Findings | Failing (%s or above, or ungraded) | Took | Reports in %s |\n|---|---|---:|---:|---:|---|\n", threshold, out)
	var failing []string
	for _, r := range results {
		n := 0
		for _, f := range r.Findings {
			if Fails(f, threshold) {
				n++
				line := fmt.Sprintf("  %s %s: %s (%s)", r.Scanner, f.ID, f.Title, f.Where)
				if f.Severity != "" {
					line += " " + f.Severity
				}
				if len(f.Aliases) > 0 {
					line += " aka " + strings.Join(f.Aliases, ", ")
				}
				failing = append(failing, line)
			}
		}
		count := fmt.Sprint(len(r.Findings))
		if r.Unreached > 0 {
			count += fmt.Sprintf(" (+%d not called)", r.Unreached)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s |\n", r.Scanner, r.Target, count, n, r.Took.Round(100*time.Millisecond), strings.Join(r.Reports, ", "))
	}
	if len(failing) > 0 {
		fmt.Fprintf(w, "\n%d failing findings:\n%s\n", len(failing), strings.Join(failing, "\n"))
	}
	return len(failing)
}

// stageManifests writes what `trivy config` checks into dir: the Dockerfile,
// the quick start's files as `kubectl apply -f` reads them, and each
// kustomization rendered as `kubectl apply -k` would apply it.
func stageManifests(ctx context.Context, o Options, dir string) error {
	copies := map[string]string{"Dockerfile": "Dockerfile"}
	for _, f := range []string{"deployment.yaml", "service.yaml", "ingress.yaml", "pdb.yaml", "postgres.yaml"} {
		copies["quick-start-"+f] = filepath.Join("k8s", f)
	}
	dev, _ := filepath.Glob(filepath.Join(o.Root, "k8s", "dev", "*.yaml")) // the pattern is valid
	if len(dev) == 0 {
		return fmt.Errorf("no manifests in %s", filepath.Join(o.Root, "k8s", "dev"))
	}
	for _, f := range dev {
		copies["dev-"+filepath.Base(f)] = filepath.Join("k8s", "dev", filepath.Base(f))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("stage the manifests: %w", err)
	}
	for name, from := range copies {
		b, err := os.ReadFile(filepath.Join(o.Root, from))
		if err != nil {
			return fmt.Errorf("stage the manifests: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("stage the manifests: %w", err)
		}
	}
	for name, src := range map[string]string{"test": "k8s/overlays/test", "prod": "k8s/overlays/prod", "monitoring": "k8s/monitoring"} {
		out, err := o.Kubectl.Output(ctx, "kustomize", filepath.Join(o.Root, src))
		if err != nil {
			return fmt.Errorf("render %s: %w", src, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(out), 0o644); err != nil {
			return fmt.Errorf("stage the manifests: %w", err)
		}
	}
	return nil
}
