package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseImageRef(t *testing.T) {
	for _, c := range []struct {
		in, name, tag, digest, out string
	}{
		{"scalable-app:latest", "scalable-app", "latest", "", "scalable-app:latest"},
		{"localhost:5001/scalable-app", "localhost:5001/scalable-app", "", "", "localhost:5001/scalable-app"},
		{"localhost:5001/scalable-app:abc", "localhost:5001/scalable-app", "abc", "", "localhost:5001/scalable-app:abc"},
		{"localhost:5001/scalable-app:abc@" + digest, "localhost:5001/scalable-app", "abc", digest, "localhost:5001/scalable-app@" + digest},
		{"localhost:5001/scalable-app@" + digest, "localhost:5001/scalable-app", "", digest, "localhost:5001/scalable-app@" + digest},
	} {
		r, err := ParseImageRef(c.in)
		if err != nil || r.Name != c.name || r.Tag != c.tag || r.Digest != c.digest || r.String() != c.out {
			t.Errorf("ParseImageRef(%q) = %+v (%q), %v; want %s %s %s", c.in, r, r.String(), err, c.name, c.tag, c.digest)
		}
	}
	for _, bad := range []string{"", "x@sha256:12", "x@md5:" + strings.Repeat("0", 64), ":tag"} {
		if _, err := ParseImageRef(bad); err == nil {
			t.Errorf("ParseImageRef(%q) took it", bad)
		}
	}
}

// The pinned overlay builds on the environment's overlay by a relative path
// and replaces only the service's image, by digest.
func TestPinnedOverlay(t *testing.T) {
	root := t.TempDir()
	dir, err := pinnedOverlay(root, Prod, ImageRef{Name: "localhost:5001/scalable-app", Tag: "abc", Digest: digest})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != filepath.Join(root, "bin") {
		t.Errorf("written to %s, want under the checkout's bin/", dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"  - ../../k8s/overlays/prod\n", "  - name: scalable-app\n    newName: localhost:5001/scalable-app\n    digest: " + digest + "\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("kustomization lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "newTag") {
		t.Errorf("a digest pin also sets a tag:\n%s", b)
	}
}

func TestRunRefusesAnUnknownStage(t *testing.T) {
	_, err := Run(context.Background(), Options{Skip: []string{"tests"}, Artifacts: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), `no stage "tests"`) {
		t.Fatalf("err = %v, want it to name the unknown stage", err)
	}
}

func TestReportPrint(t *testing.T) {
	var b strings.Builder
	Report{
		Commit: "c0ffee", Image: "localhost:5001/scalable-app:c0ffee", Digest: digest,
		Stages: []StageResult{
			{Name: StageBuild, Took: 12 * time.Second, Result: "ok"},
			{Name: StageTest, Result: "skipped"},
			{Name: StageDeploy, Took: 40 * time.Second, Result: "FAILED, rolled back"},
			{Name: StagePromo, Result: "not run"},
		},
		Deployed: map[string]string{"test": "localhost:5001/scalable-app@" + digest},
	}.Print(&b)
	for _, want := range []string{"deploy-test   40s       FAILED, rolled back", "promote-prod  -         not run", "test:   localhost:5001/scalable-app@" + digest, "prod:   (nothing deployed)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
