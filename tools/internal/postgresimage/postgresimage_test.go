package postgresimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scalable-app/tools/internal/repo"
)

func TestManifestImageIsOneAStandInCanBeBuiltFor(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	img, err := ManifestImage(filepath.Join(root, "k8s", "base", "postgres.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := ref.FindStringSubmatch(img)
	if m == nil || debianMajor[m[2]] != m[1] {
		t.Fatalf("k8s/base/postgres.yaml names %s: Debian has no package of that major for a stand-in", img)
	}

	manifest := filepath.Join(t.TempDir(), "m.yaml")
	os.WriteFile(manifest, []byte("containers:\n  - image: busybox:1\n  - image: \"docker.io/library/postgres:15-bookworm\"\n"), 0o644)
	if got, err := ManifestImage(manifest); err != nil || got != "docker.io/library/postgres:15-bookworm" {
		t.Errorf("ManifestImage = %q, %v", got, err)
	}
	os.WriteFile(manifest, []byte("image: postgres:17-alpine\n"), 0o644)
	if _, err := ManifestImage(manifest); err == nil || !strings.Contains(err.Error(), "names no postgres") {
		t.Errorf("an alpine tag: %v, want an error", err)
	}
}
