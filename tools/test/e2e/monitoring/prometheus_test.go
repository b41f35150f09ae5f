//go:build e2e

package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"scalable-app/tools/test/kube"
)

// prometheus is the HTTP API of k8s/monitoring's Prometheus, reached through
// the API server's service proxy: it works on any cluster the suite can
// reach with kubectl, with no port of the node opened.
type prometheus struct{ k kube.Kubectl }

func (p prometheus) get(ctx context.Context, path string, q url.Values, v any) error {
	raw := "/api/v1/namespaces/" + monitoringNS + "/services/prometheus:web/proxy" + path
	if len(q) > 0 {
		raw += "?" + q.Encode()
	}
	out, err := p.k.Output(ctx, "get", "--raw", raw)
	if err != nil {
		return err
	}
	var envelope struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &envelope); err != nil {
		return fmt.Errorf("Prometheus %s: %w: %.200s", path, err, out)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("Prometheus %s: %s", path, envelope.Error)
	}
	return json.Unmarshal(envelope.Data, v)
}

// sample is one series of an instant query's answer.
type sample struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant query.
func (p prometheus) query(ctx context.Context, expr string) ([]sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: a %s, want a vector", expr, data.ResultType)
	}
	var out []sample
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", expr, r.Value[1], err)
		}
		out = append(out, sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// target is one of Prometheus' active scrape targets.
type target struct {
	Labels    map[string]string `json:"labels"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

func (p prometheus) targets(ctx context.Context) ([]target, error) {
	var data struct {
		Active []target `json:"activeTargets"`
	}
	err := p.get(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &data)
	return data.Active, err
}

// alert is one of the alerts Prometheus holds, pending or firing.
type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p prometheus) alerts(ctx context.Context) ([]alert, error) {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	err := p.get(ctx, "/api/v1/alerts", nil, &data)
	return data.Alerts, err
}
