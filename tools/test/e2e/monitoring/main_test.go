//go:build e2e

// Package monitoring is the end-to-end suite of k8s/monitoring: the test
// overlay in a namespace of the suite's own and the real Prometheus of
// k8s/monitoring applied to a real cluster, then, in order: Prometheus finds
// the service's pods and the database's exporter through the Kubernetes API,
// with no more rights than discovery needs; under a load with 404s and 503s
// every query of the Grafana dashboard returns live data; the
// replicas-down alert goes pending when the Deployment is scaled to 0 and
// resolves when it is back; the console page, screenshotted in Chromium;
// the kube-prometheus-stack component validates against the operator's
// CRDs. Run it with `make e2e-monitoring`.
package monitoring

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/monitoringimages"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

const (
	namespace    = "scalable-app-e2e-mon" // the test overlay, moved here so a real `test` is never touched
	host         = "mon.e2e.scalable.local"
	monitoringNS = "monitoring" // k8s/monitoring's namespace
	appImage     = "scalable-app:latest"
	dbImage      = "postgres:17-trixie"
	appSelector  = "app=scalable-app"
	dbSelector   = "app=postgres"
)

var keep = flag.Bool("keep", false, "leave the suite's namespace and k8s/monitoring in the cluster, for inspection")

type suite struct {
	run       *command.Runner
	root      string
	target    *kube.Target
	ingress   load.Target
	prom      prometheus
	artifacts string
	// Whether the suite applied k8s/monitoring to a cluster that had none,
	// and so removes it at the end.
	createdMonitoring bool
}

// TestMonitoring sets the suite up and runs the steps in order (one alone:
// -run TestMonitoring/Step2).
func TestMonitoring(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	st, err := setup(ctx)
	cancel()
	if err != nil {
		t.Fatalf("e2e setup: %v", err)
	}
	t.Cleanup(func() { st.cleanup(t) })
	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Step1DiscoveryAndRBAC", st.testStep1DiscoveryAndRBAC},
		{"Step2DashboardQueriesOnLiveData", st.testStep2DashboardQueriesOnLiveData},
		{"Step3ReplicasDownAlert", st.testStep3ReplicasDownAlert},
		{"Step4ConsoleInChromium", st.testStep4ConsoleInChromium},
		{"Step5KubePrometheusStackComponent", st.testStep5KubePrometheusStackComponent},
	}
	for _, step := range steps {
		t.Run(step.name, step.run)
	}
}

func logf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...)
}

func setup(ctx context.Context) (*suite, error) {
	root, err := repo.Root()
	if err != nil {
		return nil, fmt.Errorf("find repository root: %w", err)
	}
	run := command.New(command.OS{}, os.Stderr)
	images := map[string]string{
		appImage: "make image", dbImage: "make postgres-image",
		monitoringimages.PrometheusImage: "make monitoring-images", monitoringimages.PostgresExporterImage: "make monitoring-images",
	}
	for img, build := range images {
		if _, err := run.Output(ctx, "look up the image "+img, "docker", "image", "inspect", "--format", "{{.Id}}", img); err != nil {
			return nil, fmt.Errorf("%w\nbuild it with `%s`", err, build)
		}
	}
	tg, err := kube.Detect(ctx, run, os.Getenv, root, logf)
	if err != nil {
		return nil, err
	}
	logf("cluster: %s; ingress at %s", tg.Name, tg.IngressAddr)
	for img := range images {
		logf("loading %s into %s", img, tg.Name)
		if err := tg.LoadImage(ctx, img); err != nil {
			return nil, err
		}
	}
	st := &suite{
		run: run, root: root, target: tg,
		ingress:   load.Target{URL: "http://" + tg.IngressAddr + "/", Host: host},
		prom:      prometheus{k: tg.Kubectl},
		artifacts: filepath.Join(root, "tools", "test", "e2e", "monitoring", "testdata", "artifacts"),
	}
	k := tg.Kubectl
	exists, err := k.NamespaceExists(ctx, namespace)
	if err != nil {
		return nil, err
	}
	if exists { // left by an earlier run with -keep
		logf("removing namespace %s left by an earlier run", namespace)
		if _, err := k.Output(ctx, "delete", "namespace", namespace, "--wait=true"); err != nil {
			return nil, err
		}
	}
	monExists, err := k.NamespaceExists(ctx, monitoringNS)
	if err != nil {
		return nil, err
	}
	st.createdMonitoring = !monExists
	dir, err := kube.TestOverlay(root, "e2e-monitoring", namespace, host)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if _, err := k.Output(ctx, "apply", "-k", dir); err != nil {
		return nil, fmt.Errorf("apply the test overlay in namespace %s: %w", namespace, err)
	}
	if _, err := k.Output(ctx, "apply", "-k", filepath.Join(root, "k8s", "monitoring")); err != nil {
		return nil, fmt.Errorf("apply k8s/monitoring: %w", err)
	}
	for _, w := range []struct {
		ns, selector, what string
		n                  int
	}{
		{monitoringNS, "app=prometheus", "Prometheus", 1},
		{namespace, dbSelector, "PostgreSQL and its exporter", 1},
		{namespace, appSelector, "the app", 2},
	} {
		if _, err := k.WaitReadyPods(ctx, w.ns, w.selector, w.n, 4*time.Minute); err != nil {
			return nil, fmt.Errorf("%s did not become Ready: %w", w.what, err)
		}
		logf("%s Ready %s after apply", w.what, time.Since(start).Round(100*time.Millisecond))
	}
	return st, nil
}

// cleanup removes the suite's namespace, and k8s/monitoring when the suite
// brought it.
func (st *suite) cleanup(t *testing.T) {
	if *keep {
		t.Logf("-keep: namespace %s and k8s/monitoring left in %s", namespace, st.target.Name)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	k := st.target.Kubectl
	if _, err := k.Output(ctx, "delete", "namespace", namespace, "--ignore-not-found", "--wait=false"); err != nil {
		t.Errorf("e2e cleanup: %v", err)
	}
	if st.createdMonitoring {
		if _, err := k.Output(ctx, "delete", "-k", filepath.Join(st.root, "k8s", "monitoring"), "--ignore-not-found", "--wait=false"); err != nil {
			t.Errorf("e2e cleanup: %v", err)
		}
	}
}

// stepContext returns a context for one step, ended when the test ends.
func stepContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
