//go:build e2e

// Package scan proves that `make scan`'s scanners are not no-ops: on
// fixtures each reports what it claims to find (a called vulnerable
// function, in the source and in an image; an insecure pod; a committed
// key), and then the real tree passes.
package scan

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/ci/scan"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
	"scalable-app/tools/internal/gotool"
	"scalable-app/tools/internal/kubectl"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/test/testcluster"
)

// The fixture module calls golang.org/x/text/language.ParseAcceptLanguage at
// v0.3.7: the Go database's GO-2022-1059, which Trivy files under its CVE.
const (
	fixtureVuln = "GO-2022-1059"
	fixtureCVE  = "CVE-2022-32149"
	image       = "scalable-app:latest"
)

type suite struct {
	root     string
	run      *command.Runner
	scanners scan.Scanners
	kubectl  kubectl.Kubectl
}

func TestScan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{root: root, run: command.New(command.OS{}, os.Stderr)}
	engine, err := dockerengine.Ensure(ctx, s.run, dockerengine.Options{Log: os.Stderr})
	if err != nil {
		t.Fatalf("docker engine: %v", err)
	}
	t.Cleanup(func() { engine.Stop() })
	kc, err := kubectl.Find(testcluster.ConfigFromEnv(os.Getenv).KubectlPath())
	if err != nil {
		t.Fatal(err)
	}
	s.kubectl = kubectl.Kubectl{Run: s.run, Bin: kc}
	cfg, err := scan.ReadConfig(filepath.Join(root, scan.ConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if s.scanners, err = scan.Provide(ctx, s.run, root, cfg, t.Logf); err != nil {
		t.Fatal(err)
	}
	t.Logf("scanners and databases ready in %s (a cold build is minutes, a warm one none)", time.Since(start).Round(time.Second))

	t.Run("FixtureVulnerabilityCalled", s.testVulnerability)
	t.Run("FixtureInsecurePod", s.testMisconfig)
	t.Run("FixtureSecret", s.testSecret)
	t.Run("RealTreeClean", s.testRealTree)
}

func (s *suite) options(t *testing.T, root string) scan.Options {
	return scan.Options{Root: root, Image: image, Binary: "/scalable-app", Out: t.TempDir(), IgnoreFile: filepath.Join(s.root, scan.IgnorePath), Run: s.run, Kubectl: s.kubectl, Logf: t.Logf}
}

// govulncheck traces the call in the source and finds it in the binary;
// trivy image finds the same vulnerability, under its CVE, in an image that
// holds the binary.
func (s *suite) testVulnerability(t *testing.T) {
	ctx := context.Background()
	mod, err := filepath.Abs("testdata/vulnmod")
	if err != nil {
		t.Fatal(err)
	}
	o := s.options(t, mod)
	src, err := scan.GovulncheckSource(ctx, o, s.scanners)
	if err != nil {
		t.Fatal(err)
	}
	f := find(t, src, fixtureVuln)
	if !strings.Contains(f.Where, "ParseAcceptLanguage") || !slices.Contains(f.Aliases, fixtureCVE) {
		t.Errorf("govulncheck source: %+v, want the call of ParseAcceptLanguage and the alias %s", f, fixtureCVE)
	}
	t.Logf("govulncheck source: %s called at %s (and %d vulnerabilities not called)", f.ID, f.Where, src.Unreached)

	toolchain, err := gotool.ServiceToolchain(s.root)
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	if _, err := s.run.Exec(ctx, command.Cmd{What: "build the fixture", Name: "go", Dir: mod,
		Args: []string{"build", "-trimpath", "-o", filepath.Join(ctxDir, "vulnmod"), "."},
		Env:  []string{"CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=" + toolchain}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY vulnmod /vulnmod\nENTRYPOINT [\"/vulnmod\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const fixtureImage = "scalable-app-scan-fixture:vulnmod"
	if err := s.run.Run(ctx, "build the fixture image", "docker", "build", "-q", "-t", fixtureImage, ctxDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.run.Run(context.Background(), "remove the fixture image", "docker", "rmi", fixtureImage) })
	o.Image, o.Binary = fixtureImage, "/vulnmod"

	bin, err := scan.GovulncheckBinary(ctx, o, s.scanners)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("govulncheck binary: %s", find(t, bin, fixtureVuln).Where)

	img, err := scan.TrivyImage(ctx, o, s.scanners)
	if err != nil {
		t.Fatal(err)
	}
	v := find(t, img, fixtureCVE)
	if !slices.Contains(v.Aliases, fixtureVuln) || !strings.HasPrefix(v.Where, "golang.org/x/text@v0.3.7") {
		t.Errorf("trivy image: %+v, want golang.org/x/text@v0.3.7 and the Go ID %s", v, fixtureVuln)
	}
	if !scan.Fails(v, "CRITICAL") {
		t.Errorf("trivy image: %+v does not fail the scan", v)
	}
	sbom, err := os.ReadFile(filepath.Join(o.Out, "sbom.cdx.json"))
	if err != nil || !strings.Contains(string(sbom), `"bomFormat": "CycloneDX"`) || !strings.Contains(string(sbom), "pkg:golang/golang.org/x/text@v0.3.7") {
		t.Errorf("the SBOM does not list golang.org/x/text v0.3.7 in CycloneDX (%v): %.300s", err, sbom)
	}
	t.Logf("trivy image: %s (%s) in %s, severity %s", v.ID, strings.Join(v.Aliases, ", "), v.Where, v.Severity)
}

// An insecure pod: privileged, no limits, writable root file system.
func (s *suite) testMisconfig(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/insecure-pod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "insecure-pod.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := scan.TrivyConfigOn(context.Background(), s.options(t, dir), s.scanners, dir)
	if err != nil {
		t.Fatal(err)
	}
	for id, what := range map[string]string{"KSV-0017": "privileged", "KSV-0011": "CPU limit", "KSV-0018": "memory limit", "KSV-0014": "read-only root"} {
		f := find(t, r, id)
		t.Logf("trivy config: %s (%s) %s: %s", id, what, f.Severity, f.Title)
	}
	if n := count(r, "HIGH"); n == 0 {
		t.Errorf("no HIGH finding on a privileged pod: %+v", r.Findings)
	}
}

// A fake key in a file: the secret scan names the rule and the line. The key
// is put together here so the repository itself never holds one.
func (s *suite) testSecret(t *testing.T) {
	dir := t.TempDir()
	key := "ghp_" + strings.Repeat("Zx9Qw2Er7Ty4", 3)
	if err := os.WriteFile(filepath.Join(dir, "deploy.env"), []byte("REGION=eu\nGITHUB_TOKEN="+key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := scan.TrivySecrets(context.Background(), s.options(t, dir), s.scanners)
	if err != nil {
		t.Fatal(err)
	}
	f := find(t, r, "github-pat")
	if !strings.HasSuffix(f.Where, "deploy.env:2") {
		t.Errorf("secret found at %s, want deploy.env:2", f.Where)
	}
	t.Logf("trivy fs: %s %s at %s", f.ID, f.Severity, f.Where)
}

// The real tree: every scan runs, nothing fails, and nothing is left in the
// config and secret scans once the accepted findings are ignored.
func (s *suite) testRealTree(t *testing.T) {
	o := s.options(t, s.root)
	results, err := scan.Run(context.Background(), o, s.scanners)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	failing := scan.Summarize(&table, results, "HIGH", o.Out)
	t.Log(table.String())
	if failing > 0 {
		t.Errorf("%d failing findings on the real tree", failing)
	}
	for _, r := range results {
		if (r.Scanner == "trivy config" || r.Scanner == "trivy fs") && len(r.Findings) > 0 {
			t.Errorf("%s: %d findings not fixed nor accepted in %s: %+v", r.Scanner, len(r.Findings), scan.IgnorePath, r.Findings)
		}
	}
	if len(results) != 5 {
		t.Errorf("%d scans ran, want 5", len(results))
	}
}

func find(t *testing.T, r scan.Result, id string) scan.Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.ID == id {
			return f
		}
	}
	var ids []string
	for _, f := range r.Findings {
		ids = append(ids, f.ID)
	}
	t.Fatalf("%s on %s did not report %s; it reported %v", r.Scanner, r.Target, id, ids)
	return scan.Finding{}
}

func count(r scan.Result, severity string) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == severity {
			n++
		}
	}
	return n
}
