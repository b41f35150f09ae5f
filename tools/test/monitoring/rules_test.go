package monitoring_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"gopkg.in/yaml.v3"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/gostandin"
	"scalable-app/tools/internal/monitoringimages"
	"scalable-app/tools/internal/repo"
)

// promtool is the promtool of the Prometheus the manifests run, built once
// from the Go module proxy and cached outside the checkout (Debian's leaves
// out Kubernetes discovery, so it cannot check prometheus.yml).
func promtool(t *testing.T) string {
	t.Helper()
	b := gostandin.Builder{Run: command.New(command.OS{}, os.Stderr), CacheDir: gostandin.DefaultCacheDir, Log: os.Stderr}
	p, err := b.Program(context.Background(), monitoringimages.Promtool(), "promtool")
	if err != nil {
		t.Fatalf("promtool is needed for the rule tests: %v", err)
	}
	return p
}

func rulesDir(t *testing.T) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "k8s", "monitoring", "rules")
}

func promtoolRun(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	t.Logf("promtool %v:\n%s", args[:2], out)
}

func TestConfigIsValid(t *testing.T) {
	promtoolRun(t, "check", "config", "--syntax-only", filepath.Join(filepath.Dir(rulesDir(t)), "prometheus.yml"))
}

func TestRulesAreValid(t *testing.T) {
	promtoolRun(t, "check", "rules", filepath.Join(rulesDir(t), "scalable-app.rules.yml"))
}

func TestAlertsFireOnOutagesAndStaySilentWhenHealthy(t *testing.T) {
	promtoolRun(t, "test", "rules", filepath.Join(rulesDir(t), "scalable-app.rules.test.yml"))
}

// Every alert has a test where it fires and one where it stays silent, and
// every annotation a person needs when paged.
func TestEveryAlertIsTestedBothWays(t *testing.T) {
	dir := rulesDir(t)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				AlertName string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, filepath.Join(dir, "scalable-app.rules.yml"), &rules)
	readYAML(t, filepath.Join(dir, "scalable-app.rules.test.yml"), &tests)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				silent[a.AlertName] = true
			}
		}
	}
	anchors := readmeAnchors(t)
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("alert %s: a test where it fires: %v, one where it stays silent: %v; want both", r.Alert, fires[r.Alert], silent[r.Alert])
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[k] == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, k)
				}
			}
			if _, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "README.md#"); !anchors[anchor] {
				t.Errorf("alert %s: runbook_url %q points at no heading of the README", r.Alert, r.Annotations["runbook_url"])
			}
		}
	}
	if alerts < 9 {
		t.Fatalf("found %d alerts in the rules; the parse is not looking at them", alerts)
	}
}

// readmeAnchors are the anchors GitHub gives the README's headings.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		anchor := strings.Map(func(r rune) rune {
			switch {
			case r == ' ':
				return '-'
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				return r
			}
			return -1
		}, title)
		anchors[anchor] = true
	}
	return anchors
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}
