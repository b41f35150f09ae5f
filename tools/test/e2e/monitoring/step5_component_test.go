//go:build e2e

package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/internal/gomod"
	"scalable-app/tools/test/kube"
)

// The prometheus-operator release whose CRDs the component is checked
// against (kube-prometheus-stack installs the same CRDs), from the Go module
// proxy: its module holds them under example/prometheus-operator-crd.
const (
	operatorModule  = "github.com/prometheus-operator/prometheus-operator"
	operatorVersion = "v0.85.0"
)

var operatorCRDs = []string{"podmonitors", "prometheusrules"}

// The kube-prometheus-stack component, added to the test overlay, is
// rejected by a cluster without the operator's CRDs and accepted by the API
// server's validation once they are installed; the dashboard ConfigMap is
// the generated JSON with Grafana's sidecar label.
func (st *suite) testStep5KubePrometheusStackComponent(t *testing.T) {
	ctx := stepContext(t, 4*time.Minute)
	k := st.target.Kubectl
	dir, err := kube.TestOverlay(st.root, "e2e-kps", namespace, host, filepath.Join("k8s", "monitoring", "kube-prometheus-stack"))
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)

	installed := map[string]bool{}
	for _, crd := range operatorCRDs {
		out, err := k.Output(ctx, "get", "crd", crd+".monitoring.coreos.com", "--ignore-not-found", "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		installed[crd] = strings.TrimSpace(out) != ""
	}
	if !installed["podmonitors"] {
		// "no matches for kind PodMonitor", or, when kubectl's discovery cache
		// still lists the CRDs an earlier run removed, a 404 on podmonitors.
		if _, err := k.Output(ctx, "apply", "--dry-run=server", "-k", dir); err == nil || !strings.Contains(strings.ToLower(err.Error()), "podmonitor") {
			t.Fatalf("without the operator's CRDs the dry run should fail on PodMonitor, got: %v", err)
		}
	}

	src, err := gomod.Download(ctx, st.run, operatorModule, operatorVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range operatorCRDs {
		if installed[crd] {
			t.Logf("%s.monitoring.coreos.com is installed already: validating against it", crd)
			continue
		}
		file := filepath.Join(src, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+crd+".yaml")
		// Server-side: the CRDs are too large for the last-applied annotation.
		if _, err := k.Output(ctx, "apply", "--server-side", "-f", file); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := k.Output(ctx, "delete", "-f", file, "--ignore-not-found"); err != nil {
				t.Errorf("remove the %s CRD: %v", crd, err)
			}
		})
		// Polled, not `kubectl wait`: on a CRD created a moment ago, wait
		// fails at once while .status.conditions is still empty.
		err := kube.Poll(ctx, time.Minute, 250*time.Millisecond, "CRD "+crd+" Established", func(ctx context.Context) (bool, string, error) {
			out, err := k.Output(ctx, "get", "crd/"+crd+".monitoring.coreos.com", "-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`)
			if err != nil {
				return false, err.Error(), nil
			}
			return strings.TrimSpace(out) == "True", "Established=" + out, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	out, err := k.Output(ctx, "apply", "--dry-run=server", "-k", dir)
	if err != nil {
		t.Fatalf("the component fails the API server's validation: %v", err)
	}
	for _, want := range []string{"podmonitor.monitoring.coreos.com/scalable-app", "podmonitor.monitoring.coreos.com/postgres-exporter", "prometheusrule.monitoring.coreos.com/scalable-app", "configmap/scalable-app-dashboard"} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run does not create %s:\n%s", want, out)
		}
	}

	// The schema is enforced: a PodMonitor with a misspelt field is refused.
	bad := `{"apiVersion":"monitoring.coreos.com/v1","kind":"PodMonitor","metadata":{"name":"bad","namespace":"` + namespace + `"},"spec":{"selector":{},"podMetricsEndpoints":[{"port":"metrics","intervall":"15s"}]}}`
	if _, err := k.OutputStdin(ctx, strings.NewReader(bad), "apply", "--dry-run=server", "--validate=strict", "-f", "-"); err == nil {
		t.Errorf("a PodMonitor with an unknown field passed the dry run: the CRD's schema is not checked")
	}

	rendered, err := k.Output(ctx, "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	doc := documentOf(rendered, "name: scalable-app-dashboard")
	committed, err := os.ReadFile(filepath.Join(st.root, "k8s", "monitoring", "kube-prometheus-stack", "scalable-app.dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(doc, `grafana_dashboard: "1"`) {
		t.Errorf("the dashboard ConfigMap lacks the label grafana_dashboard: \"1\":\n%.400s", doc)
	}
	var d map[string]any
	if err := json.Unmarshal(committed, &d); err != nil || d["uid"] != "scalable-app" || !bytes.Contains([]byte(doc), []byte(`"uid": "scalable-app"`)) {
		t.Errorf("the dashboard ConfigMap does not hold the generated dashboard (%v)", err)
	}
}

// documentOf returns the document of a multi-document YAML that contains marker.
func documentOf(yaml, marker string) string {
	for _, d := range strings.Split(yaml, "\n---\n") {
		if strings.Contains(d, marker) {
			return d
		}
	}
	return ""
}
