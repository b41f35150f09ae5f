//go:build e2e

package manifests

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/test/browser"
	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

// Seed 4.4: the Ingress, then a real browser at http://scalable.local/.
func (s *suite) testStep2IngressAndBrowser(t *testing.T) {
	// First, as installing it may take minutes: the browser the step ends with.
	if err := browser.Ensure(stepContext(t, 10*time.Minute), s.run, os.Stderr); err != nil {
		t.Fatal(err)
	}
	ctx := stepContext(t, 5*time.Minute)
	pods := s.applyBase(t, ctx, "k8s/deployment.yaml", "k8s/service.yaml")
	if _, err := s.kc.Output(ctx, "apply", "-f", "k8s/ingress.yaml"); err != nil {
		t.Fatalf("seed 4.4: `kubectl apply -f k8s/ingress.yaml` failed: %v", err)
	}
	if others := s.otherIngresses(t, ctx, seedHost, baseNS); len(others) > 0 {
		t.Fatalf("other Ingresses also claim host %s: %v; the controller may send our requests there: delete them (or the prod overlay: kubectl delete -k k8s/overlays/prod) and rerun", seedHost, others)
	}
	target := load.Target{URL: "http://" + s.target.IngressAddr + "/", Host: seedHost}
	s.waitIngress(t, ctx, target, pods)

	client, err := load.NewClient(target, load.KeepAlive)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	seen := map[string]int{}
	for i := range 20 {
		rep, err := client.Do(ctx)
		if err != nil || rep.Status != http.StatusOK || rep.Body != load.Greeting {
			t.Fatalf("request %d with Host: %s to the ingress controller at %s: want 200 %q, got %+v, error %v", i+1, seedHost, s.target.IngressAddr, load.Greeting, rep, err)
		}
		seen[rep.Instance]++
	}
	t.Logf("20 requests with Host: %s through the ingress controller at %s, by pod: %v", seedHost, s.target.IngressAddr, seen)

	shot := filepath.Join(s.artifacts, "scalable.local.png")
	page, err := browser.Load(ctx, s.run, "http://"+seedHost+"/", "MAP "+seedHost+" "+s.target.IngressAddr, shot)
	if err != nil {
		t.Fatalf("headless Chromium could not load http://%s/: %v", seedHost, err)
	}
	if !strings.Contains(page.DOM, load.Greeting) {
		t.Fatalf("Chromium rendered http://%s/ without the greeting %q; DOM: %.300s", seedHost, load.Greeting, page.DOM)
	}
	ink, err := browser.InkFraction(page.Screenshot)
	if err != nil {
		t.Fatal(err)
	}
	if ink == 0 {
		t.Fatalf("the screenshot %s is blank: the browser drew no text", page.Screenshot)
	}
	t.Logf("Chromium rendered http://%s/ with the greeting; screenshot kept at %s (%.2f%% dark pixels)", seedHost, page.Screenshot, 100*ink)
}

// waitIngress polls until the ingress controller has routed target to every one
// of pods: a new Ingress, and each new endpoint, takes a moment to reach it.
func (st *suite) waitIngress(t *testing.T, ctx context.Context, target load.Target, pods []kube.Pod) {
	t.Helper()
	client, err := load.NewClient(target, load.KeepAlive)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	answered := map[string]bool{}
	err = kube.Poll(ctx, 2*time.Minute, 100*time.Millisecond, fmt.Sprintf("wait for the ingress controller at %s to route Host: %s to all of %v", st.target.IngressAddr, target.Host, kube.Names(pods)),
		func(ctx context.Context) (bool, string, error) {
			rep, err := client.Do(ctx)
			if err != nil {
				return false, err.Error(), nil
			}
			if rep.Status == http.StatusOK && rep.Body == load.Greeting && slices.Contains(kube.Names(pods), rep.Instance) {
				answered[rep.Instance] = true
			}
			return len(answered) == len(pods), fmt.Sprintf("last: status %d from %q: %.60q; answered so far: %v", rep.Status, rep.Instance, rep.Body, answered), nil
		})
	if err != nil {
		t.Fatal(err)
	}
}

// otherIngresses lists Ingresses outside namespace ns that claim host.
func (st *suite) otherIngresses(t *testing.T, ctx context.Context, host, ns string) []string {
	t.Helper()
	var l struct {
		Items []struct {
			Metadata struct{ Name, Namespace string } `json:"metadata"`
			Spec     struct {
				Rules []struct{ Host string } `json:"rules"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := st.target.Kubectl.JSON(ctx, &l, "get", "ingress", "--all-namespaces"); err != nil {
		t.Fatalf("list Ingresses: %v", err)
	}
	var others []string
	for _, it := range l.Items {
		for _, r := range it.Spec.Rules {
			if r.Host == host && it.Metadata.Namespace != ns {
				others = append(others, it.Metadata.Namespace+"/"+it.Metadata.Name)
			}
		}
	}
	return others
}
