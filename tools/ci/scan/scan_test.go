package scan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scalable-app/tools/internal/gomod"
)

// govulncheck reports a vulnerability once per level it reaches (module,
// package, function); only a trace into a function makes a finding.
func TestParseGovulncheck(t *testing.T) {
	stream := `{"config":{"protocol_version":"v1.0.0"}}
{"osv":{"id":"GO-2022-1059","summary":"Denial of service in golang.org/x/text/language","aliases":["CVE-2022-32149"]}}
{"osv":{"id":"GO-2026-6604","summary":"Something in os","aliases":[]}}
{"finding":{"osv":"GO-2022-1059","trace":[{"module":"golang.org/x/text","version":"v0.3.7"}]}}
{"finding":{"osv":"GO-2026-6604","trace":[{"module":"stdlib","version":"v1.26.8","package":"os"}]}}
{"finding":{"osv":"GO-2022-1059","trace":[{"module":"golang.org/x/text","version":"v0.3.7","package":"golang.org/x/text/language"}]}}
{"finding":{"osv":"GO-2022-1059","trace":[{"module":"golang.org/x/text","version":"v0.3.7","package":"golang.org/x/text/language","function":"ParseAcceptLanguage"},{"module":"example.com/vulnmod","package":"example.com/vulnmod","function":"main"}]}}
`
	got, unreached, err := ParseGovulncheck([]byte(stream))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "GO-2022-1059" || got[0].Aliases[0] != "CVE-2022-32149" ||
		!strings.Contains(got[0].Where, "golang.org/x/text@v0.3.7 golang.org/x/text/language.ParseAcceptLanguage") {
		t.Errorf("findings = %+v, want GO-2022-1059 called through ParseAcceptLanguage", got)
	}
	if unreached != 1 {
		t.Errorf("unreached = %d, want 1 (GO-2026-6604, imported but not called)", unreached)
	}
	if _, _, err := ParseGovulncheck([]byte(`{"finding":`)); err == nil {
		t.Error("a truncated stream parsed without error")
	}
}

func TestParseTrivy(t *testing.T) {
	report := `{"Results":[
 {"Target":"scalable-app (gobinary)","Vulnerabilities":[{"VulnerabilityID":"CVE-2022-32149","VendorIDs":["GO-2022-1059"],"PkgName":"golang.org/x/text","InstalledVersion":"v0.3.7","Severity":"UNKNOWN","Title":"x/text"}]},
 {"Target":"pod.yaml","Misconfigurations":[
   {"ID":"KSV-0017","Title":"Privileged container","Severity":"HIGH","Status":"FAIL","Message":"privileged","CauseMetadata":{"StartLine":9}},
   {"ID":"KSV-0001","Title":"passes","Severity":"MEDIUM","Status":"PASS"}]},
 {"Target":"config.env","Secrets":[{"RuleID":"github-pat","Title":"GitHub Personal Access Token","Severity":"CRITICAL","StartLine":2}]}]}`
	got, err := ParseTrivy([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CVE-2022-32149 UNKNOWN", "KSV-0017 HIGH pod.yaml:9", "github-pat CRITICAL config.env:2"}
	if len(got) != len(want) {
		t.Fatalf("findings = %+v, want %v", got, want)
	}
	for i, w := range want {
		f := strings.Fields(w)
		if got[i].ID != f[0] || got[i].Severity != f[1] || (len(f) > 2 && got[i].Where != f[2]) {
			t.Errorf("finding %d = %+v, want %s", i, got[i], w)
		}
	}
	if got[0].Aliases[0] != "GO-2022-1059" {
		t.Errorf("the CVE lost its Go ID: %+v", got[0])
	}
}

func TestFails(t *testing.T) {
	for _, c := range []struct {
		severity, threshold string
		fails               bool
	}{
		{"", "CRITICAL", true}, // govulncheck: called code
		{"UNKNOWN", "CRITICAL", true},
		{"LOW", "HIGH", false},
		{"MEDIUM", "HIGH", false},
		{"HIGH", "HIGH", true},
		{"CRITICAL", "HIGH", true},
		{"MEDIUM", "LOW", true},
	} {
		if got := Fails(Finding{Severity: c.severity}, c.threshold); got != c.fails {
			t.Errorf("Fails(%q, --fail-on %s) = %v, want %v", c.severity, c.threshold, got, c.fails)
		}
	}
	for _, bad := range []string{"UNKNOWN", "high", ""} {
		if ValidThreshold(bad) == nil {
			t.Errorf("--fail-on %q accepted", bad)
		}
	}
}

func TestConfig(t *testing.T) {
	cfg, err := ReadConfig(filepath.Join("..", "..", "..", ConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Govulncheck == "" || cfg.Trivy == "" || cfg.VulnDB == "" {
		t.Fatalf("the repository's pins are incomplete: %+v", cfg)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "scan.conf")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# pins\ngovulncheck v1.9.0 # a comment\ntrivy v0.74.0\nvulndb v0.0.0-20260101000000-aaaaaaaaaaaa\n")
	if err := SetVulnDB(path, "v0.0.0-20261105234957-e22db6528018"); err != nil {
		t.Fatal(err)
	}
	cfg, err = ReadConfig(path)
	if err != nil || cfg.VulnDB != "v0.0.0-20261105234957-e22db6528018" || cfg.Govulncheck != "v1.9.0" {
		t.Fatalf("after SetVulnDB: %+v, %v", cfg, err)
	}
	for _, bad := range []string{
		"govulncheck v1.9.0\ntrivy v0.74.0\n",                                        // no vulndb
		"govulncheck v1.9.0\ngovulncheck v1.8.0\ntrivy v0.74.0\nvulndb v0.0.0-1-a\n", // twice
		"govulncheck 1.9.0\ntrivy v0.74.0\nvulndb v0.0.0-1-a\n",                      // no v
		"kube-score v1.20.0\n",                                                       // unknown
	} {
		write(bad)
		if _, err := ReadConfig(path); err == nil {
			t.Errorf("ReadConfig accepted %q", bad)
		}
	}
}

// The database builder's module must use the trivy-db the pinned Trivy
// requires; gomod.Required reads both go.mod files.
func TestBuilderRequiresTrivyDB(t *testing.T) {
	v, err := gomod.Required(filepath.Join("trivydb", "go.mod"), trivyDBMod)
	if err != nil || !strings.HasPrefix(v, "v0.0.0-") {
		t.Fatalf("gomod.Required(trivydb/go.mod) = %q, %v", v, err)
	}
	if _, err := gomod.Required(filepath.Join("trivydb", "go.mod"), "example.com/none"); err == nil {
		t.Error("a module that is not required was found")
	}
}
