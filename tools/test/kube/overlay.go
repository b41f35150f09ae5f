package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TestOverlay writes a kustomization that moves the test environment
// (k8s/overlays/test) into namespace and its Ingress to host, so a suite
// never touches a real `test`. Kustomize reads only relative paths, so it
// lives under the checkout's bin/, which git ignores; the caller removes the
// returned directory.
func TestOverlay(repoRoot, suite, namespace, host string, components ...string) (string, error) {
	parent := filepath.Join(repoRoot, "bin")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("make %s: %w", parent, err)
	}
	dir, err := os.MkdirTemp(parent, suite+"-")
	if err != nil {
		return "", fmt.Errorf("make the suite's kustomization directory: %w", err)
	}
	rel := func(p string) (string, error) {
		r, err := filepath.Rel(dir, filepath.Join(repoRoot, p))
		return filepath.ToSlash(r), err
	}
	base, err := rel(filepath.Join("k8s", "overlays", "test"))
	if err != nil {
		return "", err
	}
	lines := []string{
		"apiVersion: kustomize.config.k8s.io/v1beta1",
		"kind: Kustomization",
		"namespace: " + namespace,
		"resources:",
		"  - " + base,
	}
	if len(components) > 0 {
		lines = append(lines, "components:")
		for _, c := range components {
			r, err := rel(c)
			if err != nil {
				return "", err
			}
			lines = append(lines, "  - "+r)
		}
	}
	lines = append(lines,
		"patches:",
		"  - target: {kind: Ingress, name: scalable-app}",
		"    patch: |-",
		"      - {op: replace, path: /spec/rules/0/host, value: "+host+"}",
		"",
	)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return "", fmt.Errorf("write the suite's kustomization: %w", err)
	}
	return dir, nil
}
