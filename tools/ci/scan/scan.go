// Package scan is `make scan`, the pipeline's scan stage: govulncheck on the
// service's source and on the binary in its image, and Trivy on the image, on
// the Dockerfile and every rendered manifest, and on the repository for
// committed secrets. Everything runs offline, against vulnerability databases
// generated from one pinned copy of the Go vulnerability database (see
// Provide), and leaves its reports (JSON, SARIF, a CycloneDX SBOM) in one folder.
package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/kubectl"
)

// Options say what to scan and where the reports go.
type Options struct {
	Root   string // the repository
	Image  string // the production image, in the local Docker engine
	Binary string // the service's binary in Image (/scalable-app)
	Out    string // the reports folder (emptied first)
	// IgnoreFile lists the accepted findings (Trivy's format): the
	// repository's security/trivyignore.yaml. Trivy refuses a missing one.
	IgnoreFile string
	Run        *command.Runner
	Kubectl    kubectl.Kubectl // renders the kustomizations (kubectl kustomize)
	Logf       func(string, ...any)
}

// Finding is one vulnerability, misconfiguration or secret.
type Finding struct {
	ID       string   // GO-2022-1059, CVE-2022-32149, KSV-0017, github-pat
	Aliases  []string // the same vulnerability's other IDs (CVE, GHSA, GO)
	Severity string   // Trivy's CRITICAL ... UNKNOWN; govulncheck's findings have none
	Where    string   // module@version, or file:line
	Title    string
}

// Result is what one scan found.
type Result struct {
	Scanner, Target string
	Findings        []Finding
	// Unreached counts vulnerabilities govulncheck found in required modules
	// or imported packages that the code never calls: reported, not failing.
	Unreached int
	Reports   []string // files in the reports folder
	Took      time.Duration
}

// trivyOffline are the flags that keep every Trivy command off the network
// (no check bundle or version lookups, no telemetry) and its cache in memory;
// trivyNoDownload adds, for the commands that read a database, no database
// downloads.
var (
	trivyOffline    = []string{"--skip-check-update", "--skip-version-check", "--disable-telemetry", "--cache-backend", "memory"}
	trivyNoDownload = append([]string{"--skip-db-update", "--skip-java-db-update", "--offline-scan", "--no-progress"}, trivyOffline...)
)

// Run runs every scan and writes the reports. A scan that cannot run is an
// error; what the scans find is in the results.
func Run(ctx context.Context, o Options, s Scanners) ([]Result, error) {
	if err := os.RemoveAll(o.Out); err != nil {
		return nil, fmt.Errorf("empty the reports folder: %w", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create the reports folder: %w", err)
	}
	scans := []struct {
		name string
		fn   func(context.Context, Options, Scanners) (Result, error)
	}{
		{"govulncheck on the source", GovulncheckSource},
		{"govulncheck on the image's binary", GovulncheckBinary},
		{"trivy on the image", TrivyImage},
		{"trivy on the Dockerfile and the manifests", TrivyConfig},
		{"trivy on the repository, for secrets", TrivySecrets},
	}
	var results []Result
	for _, sc := range scans {
		o.Logf("scan: %s ...", sc.name)
		start := time.Now()
		r, err := sc.fn(ctx, o, s)
		if err != nil {
			return results, fmt.Errorf("%s: %w", sc.name, err)
		}
		r.Took = time.Since(start)
		o.Logf("scan: %s: %d findings in %s", sc.name, len(r.Findings), r.Took.Round(100*time.Millisecond))
		results = append(results, r)
	}
	return results, nil
}

// GovulncheckSource scans the service's packages, calls traced to symbols.
func GovulncheckSource(ctx context.Context, o Options, s Scanners) (Result, error) {
	return govulncheck(ctx, o, s, "source", "./...", o.Root)
}

// GovulncheckBinary scans the binary taken out of the production image.
func GovulncheckBinary(ctx context.Context, o Options, s Scanners) (Result, error) {
	bin := filepath.Join(o.Out, "scalable-app.bin")
	if err := copyFromImage(ctx, o.Run, o.Image, o.Binary, bin); err != nil {
		return Result{}, err
	}
	defer os.Remove(bin)
	r, err := govulncheck(ctx, o, s, "binary", bin, o.Root)
	r.Target = o.Image + " " + o.Binary
	return r, err
}

// govulncheck runs one scan twice, for the JSON it parses and for SARIF.
func govulncheck(ctx context.Context, o Options, s Scanners, mode, target, dir string) (Result, error) {
	r := Result{Scanner: "govulncheck", Target: target}
	env := []string{"GOFLAGS=-mod=mod", "GOWORK=off"}
	base := []string{"-db", "file://" + s.GovulncheckDB, "-mode", mode}
	for _, format := range []string{"json", "sarif"} {
		report := filepath.Join(o.Out, "govulncheck-"+mode+"."+format)
		f, err := os.Create(report)
		if err != nil {
			return r, fmt.Errorf("create report: %w", err)
		}
		// With -format json or sarif govulncheck exits 0 on findings: they
		// are read from the report.
		_, err = o.Run.Exec(ctx, command.Cmd{What: "govulncheck -mode " + mode, Name: s.Govulncheck,
			Args: append(append(base, "-format", format), target), Dir: dir, Env: env, Stdout: f})
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write report: %w", cerr)
		}
		if err != nil {
			return r, err
		}
		r.Reports = append(r.Reports, filepath.Base(report))
	}
	b, err := os.ReadFile(filepath.Join(o.Out, "govulncheck-"+mode+".json"))
	if err != nil {
		return r, fmt.Errorf("read report: %w", err)
	}
	r.Findings, r.Unreached, err = ParseGovulncheck(b)
	return r, err
}

// ParseGovulncheck reads govulncheck's JSON stream: the vulnerabilities
// whose code is called (a trace that reaches a function) are findings; the
// others are counted.
func ParseGovulncheck(b []byte) ([]Finding, int, error) {
	type entry struct {
		ID, Summary string
		Aliases     []string
	}
	type frame struct{ Module, Version, Package, Function string }
	entries := map[string]entry{}
	var called []Finding // in the order govulncheck reports them
	unreached := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var msg struct {
			OSV     *entry
			Finding *struct {
				OSV   string
				Trace []frame
			}
		}
		if err := dec.Decode(&msg); err != nil {
			return nil, 0, fmt.Errorf("parse govulncheck's output: %w", err)
		}
		switch {
		case msg.OSV != nil:
			entries[msg.OSV.ID] = *msg.OSV
		case msg.Finding != nil && len(msg.Finding.Trace) > 0:
			id, top := msg.Finding.OSV, msg.Finding.Trace[0]
			switch {
			case top.Function == "":
				unreached[id] = true
			case !slices.ContainsFunc(called, func(f Finding) bool { return f.ID == id }):
				called = append(called, Finding{ID: id, Where: top.Module + "@" + top.Version + " " + top.Package + "." + top.Function})
			}
		}
	}
	for i, f := range called {
		called[i].Title, called[i].Aliases = entries[f.ID].Summary, entries[f.ID].Aliases
		delete(unreached, f.ID)
	}
	return called, len(unreached), nil
}

// TrivyImage scans the production image, saved from Docker, for
// vulnerabilities, and writes its SBOM.
func TrivyImage(ctx context.Context, o Options, s Scanners) (Result, error) {
	r := Result{Scanner: "trivy image", Target: o.Image}
	tar := filepath.Join(o.Out, "image.tar")
	if err := o.Run.Run(ctx, "save the image for Trivy", "docker", "save", "-o", tar, o.Image); err != nil {
		return r, err
	}
	defer os.Remove(tar)
	report := filepath.Join(o.Out, "trivy-image.json")
	args := append([]string{"image", "--input", tar, "--cache-dir", s.TrivyCache, "--scanners", "vuln",
		"--ignorefile", o.IgnoreFile, "--list-all-pkgs", "--format", "json", "--output", report}, trivyNoDownload...)
	if err := o.Run.Run(ctx, "trivy image", s.Trivy, args...); err != nil {
		return r, err
	}
	return trivyResult(ctx, o, s, r, report, map[string]string{"sarif": "trivy-image.sarif", "cyclonedx": "sbom.cdx.json"})
}

// TrivyConfig checks the Dockerfile and every manifest as it is applied:
// the quick start's files, each overlay, the dev environment and the
// monitoring stack, rendered into the reports folder.
func TrivyConfig(ctx context.Context, o Options, s Scanners) (Result, error) {
	dir := filepath.Join(o.Out, "manifests")
	if err := stageManifests(ctx, o, dir); err != nil {
		return Result{}, err
	}
	r, err := TrivyConfigOn(ctx, o, s, dir)
	r.Target = "Dockerfile, k8s/ rendered"
	return r, err
}

// TrivyConfigOn runs Trivy's checks on the files in dir.
func TrivyConfigOn(ctx context.Context, o Options, s Scanners, dir string) (Result, error) {
	r := Result{Scanner: "trivy config", Target: dir}
	report := filepath.Join(o.Out, "trivy-config.json")
	args := append([]string{"config", "--ignorefile", o.IgnoreFile, "--format", "json", "--output", report, dir}, trivyOffline...)
	if err := o.Run.Run(ctx, "trivy config", s.Trivy, args...); err != nil {
		return r, err
	}
	return trivyResult(ctx, o, s, r, report, map[string]string{"sarif": "trivy-config.sarif"})
}

// TrivySecrets looks for committed secrets in the repository (git's own
// folder, build outputs and the reports left out).
func TrivySecrets(ctx context.Context, o Options, s Scanners) (Result, error) {
	r := Result{Scanner: "trivy fs", Target: "repository, secrets"}
	report := filepath.Join(o.Out, "trivy-secrets.json")
	args := []string{"fs", "--scanners", "secret", "--ignorefile", o.IgnoreFile,
		"--skip-dirs", filepath.Join(o.Root, ".git"), "--skip-dirs", filepath.Join(o.Root, "bin"), "--skip-dirs", o.Out,
		"--format", "json", "--output", report, o.Root}
	if err := o.Run.Run(ctx, "trivy fs --scanners secret", s.Trivy, append(args, trivyNoDownload...)...); err != nil {
		return r, err
	}
	return trivyResult(ctx, o, s, r, report, map[string]string{"sarif": "trivy-secrets.sarif"})
}

// trivyResult parses a JSON report and converts it into the other formats.
func trivyResult(ctx context.Context, o Options, s Scanners, r Result, report string, formats map[string]string) (Result, error) {
	b, err := os.ReadFile(report)
	if err != nil {
		return r, fmt.Errorf("read report: %w", err)
	}
	r.Findings, err = ParseTrivy(b)
	if err != nil {
		return r, err
	}
	r.Reports = append(r.Reports, filepath.Base(report))
	for _, format := range []string{"sarif", "cyclonedx"} {
		name, ok := formats[format]
		if !ok {
			continue
		}
		if err := o.Run.Run(ctx, "convert "+filepath.Base(report)+" to "+format, s.Trivy, "convert", "--format", format,
			"--output", filepath.Join(o.Out, name), report); err != nil {
			return r, err
		}
		r.Reports = append(r.Reports, name)
	}
	return r, nil
}

// ParseTrivy reads the findings of a Trivy JSON report: vulnerabilities,
// failed checks and secrets.
func ParseTrivy(b []byte) ([]Finding, error) {
	var rep struct {
		Results []struct {
			Target          string
			Vulnerabilities []struct {
				VulnerabilityID, PkgName, InstalledVersion, Severity, Title string
				VendorIDs                                                   []string
			}
			Misconfigurations []struct {
				ID, Title, Severity, Status, Message string
				CauseMetadata                        struct{ StartLine int }
			}
			Secrets []struct {
				RuleID, Title, Severity string
				StartLine               int
			}
		}
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("parse Trivy's report: %w", err)
	}
	var out []Finding
	for _, res := range rep.Results {
		for _, v := range res.Vulnerabilities {
			out = append(out, Finding{ID: v.VulnerabilityID, Aliases: v.VendorIDs, Severity: v.Severity,
				Where: v.PkgName + "@" + v.InstalledVersion + " in " + res.Target, Title: v.Title})
		}
		for _, m := range res.Misconfigurations {
			if m.Status != "FAIL" {
				continue
			}
			out = append(out, Finding{ID: m.ID, Severity: m.Severity, Where: fmt.Sprintf("%s:%d", res.Target, m.CauseMetadata.StartLine), Title: m.Title + ": " + m.Message})
		}
		for _, sec := range res.Secrets {
			out = append(out, Finding{ID: sec.RuleID, Severity: sec.Severity, Where: fmt.Sprintf("%s:%d", res.Target, sec.StartLine), Title: sec.Title})
		}
	}
	return out, nil
}

// copyFromImage copies one file out of a local image without running it.
func copyFromImage(ctx context.Context, run *command.Runner, image, path, to string) error {
	out, err := run.Output(ctx, "create a container of "+image+" to copy "+path+" from", "docker", "create", image)
	if err != nil {
		return err
	}
	id := strings.TrimSpace(string(out))
	cpErr := run.Run(ctx, "copy "+path+" out of "+image, "docker", "cp", id+":"+path, to)
	if err := run.Run(ctx, "remove the container", "docker", "rm", id); err != nil && cpErr == nil {
		return err
	}
	return cpErr
}
