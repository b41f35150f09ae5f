//go:build e2e

package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	devmonitoring "scalable-app/tools/dev/monitoring"
	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

// traffic is a mixed load through the Ingress: the greeting, pages that do
// not exist, and the guestbook's API, reading and writing.
type traffic []*load.Load

func startTraffic(t *testing.T, ctx context.Context, ingress load.Target) traffic {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"text": "monitored"})
	loads := []load.Options{
		{KeepAlive: 2, Rate: 20},
		{Fresh: 1, Rate: 4, Request: &load.Request{Method: "GET", Path: "/no-such-page"}, WantStatus: http.StatusNotFound},
		{KeepAlive: 1, Rate: 8, Request: &load.Request{Method: "GET", Path: "/api/messages?limit=5"}},
		{KeepAlive: 1, Rate: 2, Request: &load.Request{Method: "POST", Path: "/api/messages", Header: http.Header{"Content-Type": {"application/json"}}, Body: body}, WantStatus: http.StatusCreated},
	}
	var tr traffic
	for _, o := range loads {
		o.Target = ingress
		l, err := load.Start(ctx, o)
		if err != nil {
			tr.stop(t)
			t.Fatalf("start the load: %v", err)
		}
		tr = append(tr, l)
	}
	return tr
}

// stop ends the load and logs what each client saw: this load is the
// source of the series, not a test of the service, so its failures are
// reported and not asserted (the 503s of the database outage are wanted).
func (tr traffic) stop(t *testing.T) {
	for _, l := range tr {
		t.Logf("load: %s", l.Stop())
	}
}

// Under a load with 404s and, while the database is stopped, 503s, every
// query of every dashboard panel returns data from the live Prometheus.
func (st *suite) testStep2DashboardQueriesOnLiveData(t *testing.T) {
	ctx := stepContext(t, 8*time.Minute)
	k := st.target.Kubectl
	tr := startTraffic(t, ctx, st.ingress)
	defer tr.stop(t)
	time.Sleep(20 * time.Second)

	// A database outage: the API answers 503 until PostgreSQL is back.
	t.Log("stopping PostgreSQL for 20 s under the load")
	if _, err := k.Output(ctx, "scale", "statefulset/postgres", "-n", namespace, "--replicas=0"); err != nil {
		t.Fatal(err)
	}
	if err := kube.Poll(ctx, 2*time.Minute, time.Second, "the database pod to go", func(ctx context.Context) (bool, string, error) {
		pods, err := k.Pods(ctx, namespace, dbSelector)
		return err == nil && len(pods) == 0, fmt.Sprintf("%d pods", len(pods)), err
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second)
	if _, err := k.Output(ctx, "scale", "statefulset/postgres", "-n", namespace, "--replicas=1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.WaitReadyPods(ctx, namespace, dbSelector, 1, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Log("PostgreSQL is back")
	time.Sleep(30 * time.Second) // two scrapes of the recovered exporter

	codes := map[string]float64{}
	err := kube.Poll(ctx, time.Minute, 5*time.Second, "200s, 404s and 503s in Prometheus", func(ctx context.Context) (bool, string, error) {
		res, err := st.prom.query(ctx, `sum by (code) (increase(http_requests_total{job="scalable-app", namespace="`+namespace+`"}[10m]))`)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, s := range res {
			codes[s.Metric["code"]] = s.Value
		}
		return codes["200"] > 0 && codes["404"] > 0 && codes["503"] > 0, fmt.Sprint(codes), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("requests by status code in the last 10 minutes, as Prometheus counted them: %v", codes)

	panels := 0
	for _, row := range devmonitoring.Rows() {
		for _, p := range row.Panels {
			panels++
			for _, q := range p.Queries {
				expr := devmonitoring.Expand(q.Expr, namespace, "1m")
				var res []sample
				err := kube.Poll(ctx, time.Minute, 5*time.Second, fmt.Sprintf("panel %q to have data", p.Title), func(ctx context.Context) (bool, string, error) {
					var err error
					res, err = st.prom.query(ctx, expr)
					if err != nil {
						return false, err.Error(), nil
					}
					return len(res) > 0, fmt.Sprintf("%d series", len(res)), nil
				})
				if err != nil {
					t.Errorf("%s / %s: %v\nquery: %s", row.Title, p.Title, err, expr)
					continue
				}
				t.Logf("%s / %s [%s]: %d series, first %v = %.4g", row.Title, p.Title, q.Legend, len(res), res[0].Metric, res[0].Value)
			}
		}
	}
	t.Logf("%d panels queried", panels)
}
