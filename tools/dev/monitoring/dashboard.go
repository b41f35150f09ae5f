// Package monitoring generates the monitoring files that are derived, never
// edited by hand: the service's Grafana dashboard, built from Go with the
// Grafana Foundation SDK, and the kube-prometheus-stack PrometheusRule that
// wraps the rules file. `make monitoring-gen` writes both; a test fails when a
// committed file and this code differ, and the e2e suite runs every panel's
// query against a live Prometheus.
package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// DashboardPath is where the generated dashboard lives, from the repository root.
// It sits in the kube-prometheus-stack component, which makes it a
// ConfigMap (Kustomize reads files only below a kustomization).
const DashboardPath = "k8s/monitoring/kube-prometheus-stack/scalable-app.dashboard.json"

// UID is the dashboard's stable identity: a re-import replaces it.
const UID = "scalable-app"

// Query is one series of a panel.
type Query struct {
	Expr   string
	Legend string
}

// Panel is one graph: what it shows and in which unit.
type Panel struct {
	Title       string
	Description string
	Unit        string
	Queries     []Query
}

// Row is a titled group of panels.
type Row struct {
	Title  string
	Panels []Panel
}

// sel selects the service's series in the chosen namespace and pods.
const sel = `job="scalable-app", namespace="$namespace", pod=~"$pod"`

// ratio is the share of a selection of requests, 0 when none matched (a
// healthy service has no 5xx series at all).
func ratio(selector string) string {
	return fmt.Sprintf(`(sum(rate(http_requests_total{%s, %s}[$__rate_interval])) or vector(0))
  / sum(rate(http_requests_total{%s}[$__rate_interval]))`, sel, selector, sel)
}

func quantile(q, metric, by string) string {
	group := "le"
	if by != "" {
		group = by + ", le"
	}
	return fmt.Sprintf(`histogram_quantile(%s, sum by (%s) (rate(%s_bucket{%s}[$__rate_interval])))`, q, group, metric, sel)
}

// Rows are the dashboard's content, top to bottom.
func Rows() []Row {
	return []Row{
		{"Traffic", []Panel{
			{"Request rate by route and code", "Requests per second, by route pattern and status code.", "reqps", []Query{
				{`sum by (route, code) (rate(http_requests_total{` + sel + `}[$__rate_interval]))`, "{{route}} {{code}}"},
			}},
			{"Error ratio", "Share of answers that are 5xx (availability SLO: at most 0.1 %) and 4xx.", "percentunit", []Query{
				{ratio(`code=~"5.."`), "5xx"},
				{ratio(`code=~"4.."`), "4xx"},
			}},
			{"Latency", "Request duration percentiles over every route (latency SLO: 99 % within 250 ms).", "s", []Query{
				{quantile("0.5", "http_request_duration_seconds", ""), "p50"},
				{quantile("0.95", "http_request_duration_seconds", ""), "p95"},
				{quantile("0.99", "http_request_duration_seconds", ""), "p99"},
			}},
			{"Open connections", "Client connections by state (new, active, idle), summed over the pods.", "short", []Query{
				{`sum by (state) (http_connections{` + sel + `})`, "{{state}}"},
			}},
		}},
		{"SLOs", []Panel{
			{"Availability error budget burn rate", "How fast 5xx answers spend the 30-day budget of 0.1 %: 1 spends it in 30 days; the fast-burn alert pages at 14.4 over 1 h and 5 m.", "short", []Query{
				{`namespace:http_request_errors:ratio_rate1h{namespace="$namespace"} / 0.001`, "1h"},
				{`namespace:http_request_errors:ratio_rate5m{namespace="$namespace"} / 0.001`, "5m"},
			}},
			{"Latency error budget burn rate", "How fast answers slower than 250 ms spend the 30-day budget of 1 %.", "short", []Query{
				{`namespace:http_request_slow:ratio_rate1h{namespace="$namespace"} / 0.01`, "1h"},
				{`namespace:http_request_slow:ratio_rate5m{namespace="$namespace"} / 0.01`, "5m"},
			}},
		}},
		{"Go runtime", []Panel{
			{"Goroutines", "Goroutines per pod: about one per open connection, plus a few.", "short", []Query{
				{`go_goroutines{` + sel + `}`, "{{pod}}"},
			}},
			{"Heap", "Live heap per pod.", "bytes", []Query{
				{`go_memstats_heap_alloc_bytes{` + sel + `}`, "{{pod}}"},
			}},
			{"GC", "Garbage collections per second, and the longest pause.", "short", []Query{
				{`rate(go_gc_duration_seconds_count{` + sel + `}[$__rate_interval])`, "{{pod}} collections/s"},
				{`go_gc_duration_seconds{` + sel + `, quantile="1"}`, "{{pod}} longest pause (s)"},
			}},
		}},
		{"Resources", []Panel{
			{"CPU against the limit", "CPU used per pod, in cores, and the cores Go schedules on (GOMAXPROCS, which follows the container's CPU limit).", "short", []Query{
				{`rate(process_cpu_seconds_total{` + sel + `}[$__rate_interval])`, "{{pod}} used"},
				{`go_sched_gomaxprocs_threads{` + sel + `}`, "{{pod}} limit"},
			}},
			{"Memory against the limit", "Resident memory per pod and GOMEMLIMIT, which the Deployment sets to the container's memory limit.", "bytes", []Query{
				{`process_resident_memory_bytes{` + sel + `}`, "{{pod}} resident"},
				{`go_gc_gomemlimit_bytes{` + sel + `}`, "{{pod}} limit"},
			}},
		}},
		{"Database", []Panel{
			{"Connection pool", "The pool's connections by state, and its maximum (DB_MAX_CONNS), summed over the pods.", "short", []Query{
				{`sum by (state) (db_pool_connections{` + sel + `})`, "{{state}}"},
				{`sum(db_pool_max_connections{` + sel + `})`, "max"},
			}},
			{"Query latency", "p99 of database operations (the wait for a connection included), by operation.", "s", []Query{
				{quantile("0.99", "db_query_duration_seconds", "operation"), "{{operation}}"},
			}},
			{"Query errors", "Failed database operations per second, by operation.", "ops", []Query{
				{`sum by (operation) (rate(db_query_duration_seconds_count{` + sel + `, outcome="error"}[$__rate_interval])) or vector(0)`, "{{operation}}"},
			}},
			{"PostgreSQL", "Whether the exporter reaches PostgreSQL (1), and the server's connections.", "short", []Query{
				{`pg_up{job="postgres-exporter", namespace="$namespace"}`, "up"},
				{`sum(pg_stat_database_numbackends{job="postgres-exporter", namespace="$namespace"})`, "backends"},
			}},
		}},
	}
}

// datasource is the dashboard's Prometheus, chosen with the ${datasource}
// variable on import.
var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// Build assembles the dashboard.
func Build() (dashboard.Dashboard, error) {
	label := func(name, query string) *dashboard.QueryVariableBuilder {
		return dashboard.NewQueryVariableBuilder(name).
			Label(name).
			Datasource(datasource).
			Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
			Definition(query).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc)
	}
	b := dashboard.NewDashboardBuilder("scalable-app").
		Uid(UID).
		Description("Traffic, errors, latency, SLO burn rates, Go runtime, resources and database of scalable-app. Generated by tools/dev/monitoring (make monitoring-gen); do not edit.").
		Tags([]string{"scalable-app", "kubernetes", "go"}).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus")).
		WithVariable(label("namespace", `label_values(http_requests_total{job="scalable-app"}, namespace)`)).
		WithVariable(label("pod", `label_values(http_requests_total{job="scalable-app", namespace="$namespace"}, pod)`).
			Multi(true).IncludeAll(true).AllValue(".*"))
	// Stable panel ids: links such as ?viewPanel=3 keep working across
	// regenerations while panels are only appended.
	var id uint32
	for _, row := range Rows() {
		id++
		b = b.WithRow(dashboard.NewRowBuilder(row.Title).Id(id))
		width := uint32(24 / len(row.Panels))
		if width < 8 {
			width = 8
		}
		for _, p := range row.Panels {
			id++
			tp := timeseries.NewPanelBuilder().
				Id(id).
				Title(p.Title).
				Description(p.Description).
				Datasource(datasource).
				Unit(p.Unit).
				Min(0).
				Height(8).
				Span(width).
				FillOpacity(10)
			for _, q := range p.Queries {
				tp = tp.WithTarget(prometheus.NewDataqueryBuilder().Datasource(datasource).Expr(q.Expr).LegendFormat(q.Legend))
			}
			b = b.WithPanel(tp)
		}
	}
	return b.Build()
}

// DashboardJSON is the dashboard as committed: indented, with a final newline.
func DashboardJSON() ([]byte, error) {
	d, err := Build()
	if err != nil {
		return nil, fmt.Errorf("build the dashboard: %w", err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // PromQL's < and > stay readable
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode the dashboard: %w", err)
	}
	return b.Bytes(), nil
}

// Expand replaces the dashboard's variables as Grafana would, for running a
// panel's query straight against Prometheus.
func Expand(expr, namespace, rateInterval string) string {
	return strings.NewReplacer("$namespace", namespace, "$pod", ".*", "$__rate_interval", rateInterval).Replace(expr)
}
