// Package monitoringimages names the monitoring stack's official images, as
// k8s/monitoring and k8s/base/postgres.yaml name them, and how each is made
// where it cannot be pulled (package gostandin): at the version Debian
// trixie packages, so the server matches what a Debian user runs, but built
// from the Go module proxy, since Debian leaves out Kubernetes service
// discovery and links its exporter against libc.
package monitoringimages

import "scalable-app/tools/internal/gostandin"

// Versions of the images, and of the Go modules their programs come from.
const (
	PrometheusVersion = "v2.53.3" // Debian trixie's prometheus 2.53.3+ds1
	// Prometheus 2's Go module carries the release as v0.<minor>.<patch>.
	prometheusModuleVersion = "v0.53.3"

	PostgresExporterVersion = "v0.17.1" // Debian trixie's prometheus-postgres-exporter 0.17.1
)

// Official names, as a user pulls them.
const (
	PrometheusImage       = "prom/prometheus:" + PrometheusVersion
	PostgresExporterImage = "quay.io/prometheuscommunity/postgres-exporter:" + PostgresExporterVersion
)

// stamp is the version information upstream's release build sets.
func stamp(version string) string {
	const p = "github.com/prometheus/common/version."
	return "-X " + p + "Version=" + version[1:] + " -X " + p + "Branch=HEAD -X " + p + "BuildUser=scalable-app-standin"
}

// Prometheus is prom/prometheus: the server and promtool, the console
// templates and libraries, the example configuration, in the official
// image's places and with its defaults. It lacks the official image's React
// UI (/graph): the published Go module leaves out every vendor/ folder, and
// the UI's build needs the charting code Prometheus keeps in one. The API,
// the console templates and the rest of the server are the release's.
func Prometheus() gostandin.Recipe {
	return gostandin.Recipe{
		Ref:      PrometheusImage,
		Title:    "Prometheus",
		Module:   "github.com/prometheus/prometheus",
		Version:  prometheusModuleVersion,
		Commands: []string{"./cmd/prometheus", "./cmd/promtool"},
		Ldflags:  stamp(PrometheusVersion),
		Copy: map[string]string{
			"console_libraries":                     "usr/share/prometheus/console_libraries",
			"consoles":                              "usr/share/prometheus/consoles",
			"documentation/examples/prometheus.yml": "etc/prometheus/prometheus.yml",
			"LICENSE":                               "LICENSE",
			"NOTICE":                                "NOTICE",
		},
		Links: map[string]string{
			"etc/prometheus/console_libraries": "/usr/share/prometheus/console_libraries",
			"etc/prometheus/consoles":          "/usr/share/prometheus/consoles",
		},
		Writable: []string{"etc/prometheus", "prometheus"},
		Config: `WORKDIR /prometheus
USER nobody
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.console.libraries=/usr/share/prometheus/console_libraries", "--web.console.templates=/usr/share/prometheus/consoles"]
`,
	}
}

// Promtool is promtool alone, of the same version as the server, for the
// checks of the configuration and rules that run on this machine.
func Promtool() gostandin.Recipe {
	r := Prometheus()
	r.Ref = "promtool:" + PrometheusVersion // a cache entry's name; never an image
	r.Title = "promtool"
	r.Commands = []string{"./cmd/promtool"}
	r.Copy, r.Links, r.Writable, r.Config = nil, nil, nil, ""
	return r
}

// PostgresExporter is the Prometheus community's PostgreSQL exporter.
func PostgresExporter() gostandin.Recipe {
	return gostandin.Recipe{
		Ref:      PostgresExporterImage,
		Title:    "postgres_exporter",
		Module:   "github.com/prometheus-community/postgres_exporter",
		Version:  PostgresExporterVersion,
		Commands: []string{"./cmd/postgres_exporter"},
		Ldflags:  stamp(PostgresExporterVersion),
		Copy:     map[string]string{"LICENSE": "LICENSE", "NOTICE": "NOTICE"},
		Config: `EXPOSE 9187
USER nobody
ENTRYPOINT ["/bin/postgres_exporter"]
`,
	}
}

// All are the images the monitoring stack runs.
func All() []gostandin.Recipe {
	return []gostandin.Recipe{Prometheus(), PostgresExporter()}
}
