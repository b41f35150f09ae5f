package monitoring

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	sdk "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"

	"scalable-app/tools/internal/repo"
)

// The committed JSON is what this code generates: an edit of either alone
// fails here.
func TestCommittedDashboardIsGenerated(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(root, DashboardPath))
	if err != nil {
		t.Fatalf("%v (generate it with `make monitoring-gen`)", err)
	}
	generated, err := DashboardJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, generated) {
		t.Fatalf("%s differs from what tools/dev/monitoring generates: run `make monitoring-gen` and commit the result", DashboardPath)
	}
}

// The JSON reads back as a Grafana dashboard with the variables and panels
// the issue asks for, every query filtered by the chosen namespace.
func TestDashboardReadsBackWithVariablesAndQueries(t *testing.T) {
	b, err := DashboardJSON()
	if err != nil {
		t.Fatal(err)
	}
	plugins.RegisterDefaultPlugins()
	var d sdk.Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("the generated JSON does not read back as a dashboard: %v", err)
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	if got := strings.Join(vars, ","); got != "datasource,namespace,pod" {
		t.Errorf("template variables %s, want datasource,namespace,pod", got)
	}
	panels := 0
	for _, p := range d.Panels {
		if p.Panel == nil {
			continue // a row
		}
		panels++
		if len(p.Panel.Targets) == 0 {
			t.Errorf("panel %q has no query", *p.Panel.Title)
		}
		for _, target := range p.Panel.Targets {
			q, ok := target.(*prometheus.Dataquery)
			if !ok {
				t.Fatalf("panel %q: query of type %T, want a Prometheus query", *p.Panel.Title, target)
			}
			if !strings.Contains(q.Expr, `namespace="$namespace"`) {
				t.Errorf("panel %q: query %q ignores the namespace variable", *p.Panel.Title, q.Expr)
			}
		}
	}
	want := 0
	for _, r := range Rows() {
		want += len(r.Panels)
	}
	if panels != want || panels < 15 {
		t.Errorf("%d panels in the JSON, %d in Rows(): want the same, at least 15", panels, want)
	}
}

// The PrometheusRule holds the rules file's groups unchanged.
func TestCommittedPrometheusRuleIsGenerated(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(root, PrometheusRulePath))
	if err != nil {
		t.Fatalf("%v (generate it with `make monitoring-gen`)", err)
	}
	generated, err := PrometheusRuleYAML(root)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, generated) {
		t.Fatalf("%s differs from what tools/dev/monitoring generates from %s: run `make monitoring-gen` and commit the result", PrometheusRulePath, RulesPath)
	}
	var rules, wrapped struct {
		Groups any `yaml:"groups"`
		Spec   struct {
			Groups any `yaml:"groups"`
		} `yaml:"spec"`
	}
	src, err := os.ReadFile(filepath.Join(root, RulesPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(src, &rules); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(committed, &wrapped); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rules.Groups, wrapped.Spec.Groups) || rules.Groups == nil {
		t.Errorf("the PrometheusRule's spec.groups differ from the rules file's groups")
	}
}
