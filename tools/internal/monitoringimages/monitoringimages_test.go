package monitoringimages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scalable-app/tools/internal/repo"
)

// The manifests name the images this package provides, so `make
// monitoring-images` provides what the cluster will run.
func TestManifestsNameTheseImages(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	for file, ref := range map[string]string{
		"k8s/monitoring/prometheus.yaml": PrometheusImage,
		"k8s/base/postgres.yaml":         PostgresExporterImage,
	} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "image: "+ref+"\n") {
			t.Errorf("%s does not name %s", file, ref)
		}
	}
}

func TestRecipesBuildTheirImagesPrograms(t *testing.T) {
	for _, r := range All() {
		entry := r.Config[strings.Index(r.Config, "ENTRYPOINT"):]
		found := false
		for _, c := range r.Commands {
			if strings.Contains(entry, `"/bin/`+filepath.Base(c)+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: the entrypoint %q is none of the programs built (%v)", r.Ref, strings.TrimSpace(entry), r.Commands)
		}
	}
	if p := Promtool(); len(p.Commands) != 1 || p.Config != "" {
		t.Errorf("the promtool recipe builds %v with image config %q, want promtool alone", p.Commands, p.Config)
	}
}
