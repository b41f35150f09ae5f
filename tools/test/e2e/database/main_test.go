//go:build e2e

// Package database is the end-to-end suite of the guestbook and its
// PostgreSQL: the test overlay, database included, applied to a real cluster
// in a namespace of the suite's own, then four proofs in order: replicas share
// state; deleting the database's pod under a write load loses no acknowledged
// write; a rollout under a POST load whose client retries with its
// Idempotency-Key fails nothing and duplicates nothing; the guestbook page
// works in a real browser. Run it with `make e2e-database`: on the test
// cluster by default, or on the cluster KUBECONFIG names (for example minikube).
package database

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
	namespace   = "scalable-app-e2e-db" // the test overlay, moved here so a real `test` is never touched
	host        = "db.e2e.scalable.local"
	appImage    = "scalable-app:latest"
	dbImage     = "postgres:17-trixie"
	appSelector = "app=scalable-app"
	dbSelector  = "app=postgres"
)

var keep = flag.Bool("keep", false, "leave the suite's namespace in the cluster, for inspection")

// suite is what every step shares, set up once by TestDatabase.
type suite struct {
	run       *command.Runner
	root      string
	target    *kube.Target
	ingress   load.Target // the service through the Ingress, with the suite's host
	artifacts string      // screenshots
	runID     string      // makes this run's messages unique
}

// TestDatabase sets the suite up and runs the steps in order (one alone:
// -run TestDatabase/Step2).
func TestDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	st, err := setup(ctx, t)
	cancel()
	if err != nil {
		t.Fatalf("e2e setup: %v", err)
	}
	t.Cleanup(func() {
		if *keep {
			t.Logf("-keep: namespace %s left in %s", namespace, st.target.Name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := st.target.Kubectl.Output(ctx, "delete", "namespace", namespace, "--ignore-not-found", "--wait=false"); err != nil {
			t.Errorf("e2e cleanup: %v", err)
		}
	})
	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Step1ReplicasShareState", st.testStep1ReplicasShareState},
		{"Step2DatabasePodDeleteUnderWriteLoad", st.testStep2DatabasePodDeleteUnderWriteLoad},
		{"Step3RolloutWithIdempotentRetries", st.testStep3RolloutWithIdempotentRetries},
		{"Step4GuestbookInChromium", st.testStep4GuestbookInChromium},
	}
	for _, step := range steps {
		t.Run(step.name, step.run)
	}
}

func setup(ctx context.Context, t *testing.T) (*suite, error) {
	root, err := repo.Root()
	if err != nil {
		return nil, fmt.Errorf("find repository root: %w", err)
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }
	run := command.New(command.OS{}, os.Stderr)
	images := map[string]string{appImage: "make image", dbImage: "make postgres-image", monitoringimages.PostgresExporterImage: "make monitoring-images"}
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
		artifacts: filepath.Join(root, "tools", "test", "e2e", "database", "testdata", "artifacts"),
		runID:     fmt.Sprintf("e2e-%d", time.Now().UnixNano()),
	}
	k := tg.Kubectl
	exists, err := k.NamespaceExists(ctx, namespace)
	if err != nil {
		return nil, err
	}
	if exists { // left by an earlier run with -keep: start from an empty database
		logf("removing namespace %s left by an earlier run", namespace)
		if _, err := k.Output(ctx, "delete", "namespace", namespace, "--wait=true"); err != nil {
			return nil, err
		}
	}
	dir, err := kube.TestOverlay(st.root, "e2e-database", namespace, host)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if _, err := k.Output(ctx, "apply", "-k", dir); err != nil {
		return nil, fmt.Errorf("apply the test overlay in namespace %s: %w", namespace, err)
	}
	if _, err := k.WaitReadyPods(ctx, namespace, dbSelector, 1, 4*time.Minute); err != nil {
		return nil, fmt.Errorf("PostgreSQL did not become Ready: %w", err)
	}
	logf("PostgreSQL Ready %s after apply", time.Since(start).Round(100*time.Millisecond))
	if _, err := k.WaitReadyPods(ctx, namespace, appSelector, 2, 3*time.Minute); err != nil {
		return nil, fmt.Errorf("the app did not reach 2 Ready pods: %w", err)
	}
	// The schema is applied by the first replica to start; the API answers once it is.
	if err := st.waitAPI(ctx, st.ingress, "the Ingress", 2*time.Minute); err != nil {
		return nil, err
	}
	logf("API answering through the Ingress %s after apply", time.Since(start).Round(100*time.Millisecond))
	return st, nil
}

// waitAPI polls the message list through tg until it answers 200.
func (st *suite) waitAPI(ctx context.Context, tg load.Target, through string, timeout time.Duration) error {
	return kube.Poll(ctx, timeout, 500*time.Millisecond, "the API to answer through "+through, func(ctx context.Context) (bool, string, error) {
		rep, err := st.send(ctx, tg, load.Request{Method: "GET", Path: "/api/messages?limit=1"})
		if err != nil {
			return false, err.Error(), nil
		}
		return rep.Status == 200, fmt.Sprintf("status %d: %.120s", rep.Status, rep.Body), nil
	})
}

// stepContext returns a context for one step, ended when the test ends.
func stepContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
