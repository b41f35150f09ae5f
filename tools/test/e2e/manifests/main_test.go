//go:build e2e

// Package manifests is the end-to-end suite of k8s/: it applies the manifests
// to a real cluster exactly as the README does and proves what they promise.
// Run it with `make e2e-manifests`: against the project's test cluster by
// default, or against the cluster KUBECONFIG names (for example minikube).
package manifests

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/test/kube"
)

const (
	image      = "scalable-app:latest"
	selector   = "app=scalable-app"
	baseNS     = "scalable-app-e2e" // the "current namespace" steps 1-4 apply into
	seedHost   = "scalable.local"
	testHost   = "test.scalable.local"
	reqPerSec  = 150 // load during rollouts: at least 100 req/s, so a rollout is measured under real load
	loadWorker = 16
)

var keep = flag.Bool("keep", false, "leave what the suite created in the cluster, for inspection")

// suite is what every step shares: set up once by TestManifests, which
// runs the steps in order against one cluster and passes the suite to each.
type suite struct {
	run       *command.Runner // every external command but kubectl
	root      string          // repository root
	target    *kube.Target    // the cluster
	kc        kube.Kubectl    // kubectl whose current namespace is baseNS
	artifacts string          // kept outputs: screenshots
	createdNS map[string]bool
	scratch   string // holds a copy of the cluster admin's kubeconfig: always removed
}

// TestManifests sets the suite up and runs the steps as subtests, in the
// README's order (one alone: -run TestManifests/Step3).
func TestManifests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	st, err := setup(ctx)
	cancel()
	if err != nil {
		t.Fatalf("e2e setup: %v", err)
	}
	t.Cleanup(func() {
		// The kubeconfig copy goes even with -keep: -keep is about the cluster.
		if err := os.RemoveAll(st.scratch); err != nil {
			t.Errorf("e2e cleanup: %v", err)
		}
		if *keep {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := st.cleanup(ctx); err != nil {
			t.Errorf("e2e cleanup: %v", err)
		}
	})
	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Step1DeploymentAndService", st.testStep1DeploymentAndService},
		{"Step2IngressAndBrowser", st.testStep2IngressAndBrowser},
		{"Step3RolloutRestartUnderLoad", st.testStep3RolloutRestartUnderLoad},
		{"Step4PodDeleteUnderLoad", st.testStep4PodDeleteUnderLoad},
		{"Step5Overlays", st.testStep5Overlays},
		{"Step6ServerDryRun", st.testStep6ServerDryRun},
		{"Step6Lint", st.testStep6Lint},
	}
	for _, step := range steps {
		t.Run(step.name, step.run)
	}
}

func setup(ctx context.Context) (*suite, error) {
	root, err := repo.Root()
	if err != nil {
		return nil, fmt.Errorf("find repository root: %w", err)
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }
	run := command.New(command.OS{}, os.Stderr)
	if _, err := run.Output(ctx, "look up the image to test", "docker", "image", "inspect", "--format", "{{.Id}}", image); err != nil {
		return nil, fmt.Errorf("%w\nbuild it with `make image`", err)
	}
	t, err := kube.Detect(ctx, run, os.Getenv, root, logf)
	if err != nil {
		return nil, err
	}
	logf("cluster: %s; ingress at %s; NodePorts on %s", t.Name, t.IngressAddr, t.NodeAddr)
	logf("loading %s into %s", image, t.Name)
	if err := t.LoadImage(ctx, image); err != nil {
		return nil, err
	}
	st := &suite{run: run, root: root, target: t, artifacts: filepath.Join(root, "tools", "test", "e2e", "manifests", "testdata", "artifacts"), createdNS: map[string]bool{}}
	for _, ns := range []string{baseNS, "test", "prod"} {
		exists, err := t.Kubectl.NamespaceExists(ctx, ns)
		if err != nil {
			return nil, fmt.Errorf("look up namespace %s: %w", ns, err)
		}
		st.createdNS[ns] = !exists
	}
	// A fresh namespace of the suite's own, so step 1 really starts from nothing.
	if !st.createdNS[baseNS] {
		if _, err := t.Kubectl.Output(ctx, "delete", "namespace", baseNS, "--wait=true"); err != nil {
			return nil, fmt.Errorf("remove the namespace %s left by an earlier run: %w", baseNS, err)
		}
		st.createdNS[baseNS] = true
	}
	if _, err := t.Kubectl.Output(ctx, "create", "namespace", baseNS); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "e2e-manifests-")
	if err != nil {
		return nil, fmt.Errorf("make a scratch directory: %w", err)
	}
	st.scratch = dir
	st.kc, err = t.Kubectl.InNamespace(ctx, dir, baseNS)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return st, nil
}

// cleanup removes what the suite made: its namespace, the environments' objects,
// and the test and prod namespaces if the suite created them and nothing else
// lives there (the dev loop shares `test`).
func (st *suite) cleanup(ctx context.Context) error {
	k := st.target.Kubectl
	var errs []string
	if _, err := k.Output(ctx, "delete", "namespace", baseNS, "--ignore-not-found", "--wait=false"); err != nil {
		errs = append(errs, err.Error())
	}
	for _, ns := range []string{"test", "prod"} {
		// What the overlays apply, the database included (its data is the
		// suite's: step 5 started it on an empty volume or took over one).
		if _, err := k.Output(ctx, "delete", "-n", ns, "--ignore-not-found",
			"deployment/scalable-app", "service/scalable-app", "ingress/scalable-app", "poddisruptionbudget/scalable-app",
			"statefulset/postgres", "service/postgres", "service/postgres-headless"); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if !st.createdNS[ns] {
			continue
		}
		// Our pods may still be terminating; anything else means the namespace is in use.
		out, err := k.Output(ctx, "get", "deployments,statefulsets,daemonsets,jobs,pods", "-n", ns, "-l", "app notin (scalable-app,postgres)", "-o", "name")
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if strings.TrimSpace(out) == "" {
			if _, err := k.Output(ctx, "delete", "namespace", ns, "--ignore-not-found", "--wait=false"); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// ctx returns a context for one step, ended when the test ends.
func stepContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// applyBase makes sure the seed's objects are applied in baseNS and the
// Deployment has 2 Ready pods, so each step can also run alone (-run).
func (st *suite) applyBase(t *testing.T, ctx context.Context, files ...string) []kube.Pod {
	t.Helper()
	for _, f := range files {
		if _, err := st.kc.Output(ctx, "apply", "-f", f); err != nil {
			t.Fatalf("kubectl apply -f %s failed: %v", f, err)
		}
	}
	pods, err := st.kc.WaitReadyPods(ctx, baseNS, selector, 2, 3*time.Minute)
	if err != nil {
		t.Fatalf("the Deployment did not reach 2 Running and Ready pods: %v", err)
	}
	return pods
}
