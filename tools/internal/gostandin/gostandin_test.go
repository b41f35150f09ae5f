package gostandin

import (
	"strings"
	"testing"
)

func TestDockerfileGivesNobodyTheWritableFolders(t *testing.T) {
	r := Recipe{
		Ref: "prom/prometheus:v9.9.9", Title: "Prometheus", Module: "example.com/prom", Version: "v0.9.9",
		Copy:     map[string]string{"documentation/examples/prometheus.yml": "etc/prometheus/prometheus.yml"},
		Writable: []string{"prometheus", "etc/prometheus"},
		Config:   "USER nobody\n",
	}
	got := r.Dockerfile()
	for _, want := range []string{
		"FROM scratch\nCOPY rootfs/ /\n",
		// Each folder nobody owns has a COPY of its own, which creates it.
		"COPY --chown=65534:65534 owned/etc/prometheus/ /etc/prometheus/\n",
		"COPY --chown=65534:65534 owned/prometheus/ /prometheus/\n",
		"stand-in for prom/prometheus:v9.9.9: example.com/prom@v0.9.9 built from the Go module proxy",
		"USER nobody\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Dockerfile lacks %q:\n%s", want, got)
		}
	}
}

func TestRecipeDigestFollowsTheRecipe(t *testing.T) {
	a := Recipe{Ref: "x:v1", Module: "example.com/x", Version: "v1.0.0", Commands: []string{"./cmd/x"}}
	b := a
	b.Version = "v1.0.1"
	c := a
	c.Copy = map[string]string{"LICENSE": "LICENSE"}
	if a.digest() == b.digest() || a.digest() == c.digest() {
		t.Errorf("a new version or a new file keeps the digest: a stand-in from the old recipe would be kept")
	}
	if a.digest() != a.digest() {
		t.Errorf("the digest of one recipe changes between calls")
	}
	if !strings.HasPrefix(a.name(), "x-v1-") || a.name() == b.name() {
		t.Errorf("cache entries %q and %q: want x-v1-<digest>, one per recipe", a.name(), b.name())
	}
}
