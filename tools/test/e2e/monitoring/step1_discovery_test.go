//go:build e2e

package monitoring

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/test/kube"
)

// Prometheus finds both app pods and the exporter of the suite's namespace
// through the API, scrapes them on their metrics ports, and may read pods
// and nothing else.
func (st *suite) testStep1DiscoveryAndRBAC(t *testing.T) {
	ctx := stepContext(t, 3*time.Minute)
	pods, err := st.target.Kubectl.Pods(ctx, namespace, appSelector)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // instance -> job
	for _, p := range pods {
		want[p.IP+":9090"] = "scalable-app"
	}
	db, err := st.target.Kubectl.Pods(ctx, namespace, dbSelector)
	if err != nil || len(db) != 1 {
		t.Fatalf("the database pod: %v (%d pods)", err, len(db))
	}
	want[db[0].IP+":9187"] = "postgres-exporter"
	start := time.Now()
	var found []target
	err = kube.Poll(ctx, 2*time.Minute, 2*time.Second, "Prometheus to scrape the suite's pods", func(ctx context.Context) (bool, string, error) {
		all, err := st.prom.targets(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		found = nil
		for _, tg := range all {
			if tg.Labels["namespace"] == namespace {
				found = append(found, tg)
			}
		}
		up := 0
		for _, tg := range found {
			if want[tg.Labels["instance"]] == tg.Labels["job"] && tg.Health == "up" {
				up++
			}
		}
		return up == len(want) && len(found) == len(want), describe(found), nil
	})
	if err != nil {
		t.Fatalf("%v\nwant %v", err, want)
	}
	t.Logf("every target up %s after the pods were Ready: %s", time.Since(start).Round(time.Second), describe(found))
	for _, tg := range found {
		if tg.Labels["job"] == "scalable-app" && !strings.HasPrefix(tg.Labels["pod"], "scalable-app-") {
			t.Errorf("target %s has pod label %q", tg.Labels["instance"], tg.Labels["pod"])
		}
	}

	// The dev pods (app=scalable-app-dev) and the public port are never targets.
	all, err := st.prom.targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range all {
		if strings.HasSuffix(tg.Labels["instance"], ":5000") {
			t.Errorf("Prometheus scrapes the public port: %v", tg.Labels)
		}
	}

	sa := "system:serviceaccount:" + monitoringNS + ":prometheus"
	for _, c := range []struct {
		verb, resource string
		allowed        bool
	}{
		{"list", "pods", true}, {"watch", "pods", true},
		{"get", "secrets", false}, {"list", "services", false}, {"list", "configmaps", false}, {"create", "pods", false},
	} {
		// can-i answers "no" with exit status 1; anything else is a failure to ask.
		out, err := st.target.Kubectl.Output(ctx, "auth", "can-i", c.verb, c.resource, "--all-namespaces", "--as", sa)
		answer := strings.TrimSpace(out)
		if answer != "yes" && answer != "no" {
			t.Errorf("can-i %s %s as %s: %v", c.verb, c.resource, sa, err)
		} else if (answer == "yes") != c.allowed {
			t.Errorf("Prometheus' service account: can-i %s %s = %s, want allowed=%v", c.verb, c.resource, answer, c.allowed)
		}
	}
}

func describe(ts []target) string {
	var parts []string
	for _, tg := range ts {
		s := fmt.Sprintf("%s %s %s", tg.Labels["job"], tg.Labels["instance"], tg.Health)
		if tg.LastError != "" {
			s += " (" + tg.LastError + ")"
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
