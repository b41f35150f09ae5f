//go:build e2e

package manifests

import (
	"path/filepath"
	"sort"
	"testing"
	"time"

	"scalable-app/tools/test/lint"
)

// Every manifest and rendered overlay is accepted by the API server.
func (s *suite) testStep6ServerDryRun(t *testing.T) {
	ctx := stepContext(t, 3*time.Minute)
	for _, f := range []string{"k8s/deployment.yaml", "k8s/service.yaml", "k8s/ingress.yaml", "k8s/pdb.yaml"} {
		if _, err := s.kc.Output(ctx, "apply", "--dry-run=server", "-f", f); err != nil {
			t.Errorf("server-side dry run of %s failed: %v", f, err)
		}
	}
	if _, err := s.kc.Output(ctx, "apply", "--dry-run=server", "-k", "k8s/"); err != nil {
		t.Errorf("server-side dry run of k8s/ (kustomization) failed: %v", err)
	}
	for _, o := range lint.Overlays() {
		// A dry run creates nothing, so the overlay's namespace must exist for
		// its other objects to be checked.
		if _, err := s.target.Kubectl.Output(ctx, "apply", "-f", "k8s/overlays/"+o+"/namespace.yaml"); err != nil {
			t.Fatalf("create namespace of overlay %s: %v", o, err)
		}
		if _, err := s.target.Kubectl.Output(ctx, "apply", "--dry-run=server", "-k", "k8s/overlays/"+o); err != nil {
			t.Errorf("server-side dry run of overlay %s failed: %v", o, err)
		}
	}
}

// kube-score finds nothing critical (nor any warning) once the checks listed,
// with their reasons, in k8s/kube-score.conf are silenced.
func (s *suite) testStep6Lint(t *testing.T) {
	ctx := stepContext(t, 5*time.Minute)
	cfg, err := lint.ReadConfig(filepath.Join(s.root, lint.ConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := lint.Binary(ctx, s.run, cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := lint.Inputs(ctx, s.target.Kubectl.Kubectl, s.root, dir)
	if err != nil {
		t.Fatal(err)
	}
	findings, _, err := lint.Score(ctx, s.run, bin, cfg, files)
	if err != nil {
		t.Fatal(err)
	}
	var silenced []string
	for c, why := range cfg.Ignore {
		silenced = append(silenced, c+" ("+why+")")
	}
	sort.Strings(silenced)
	t.Logf("kube-score %s on %d files; silenced: %v", cfg.Version, len(files), silenced)
	for _, f := range findings {
		t.Errorf("kube-score: %s", f.Line)
	}
}
