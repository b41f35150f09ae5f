package images

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"scalable-app:latest":           "docker.io/library/scalable-app:latest",
		"scalable-app":                  "docker.io/library/scalable-app:latest",
		"najsv98/scalable-app:build-12": "docker.io/najsv98/scalable-app:build-12",
		"localhost:5000/app:v1":         "localhost:5000/app:v1",
		"testcluster.local/pause:1":     "testcluster.local/pause:1",
		"ghcr.io/x/y@sha256:abc":        "ghcr.io/x/y@sha256:abc",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteArchive checks the archive is a valid OCI layout: every blob is
// stored under its digest and the index names the image.
func TestWriteArchive(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	if err := os.WriteFile(bin, []byte("not really a binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img.tar")
	if err := WriteArchive(out, "testcluster.local/pause:1", bin); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	for name, b := range files {
		if d, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) != d {
				t.Errorf("blob %s does not match its digest", name)
			}
		}
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != "testcluster.local/pause:1" {
		t.Fatalf("index names no image: %s", files["index.json"])
	}
	m := files["blobs/sha256/"+strings.TrimPrefix(index.Manifests[0].Digest, "sha256:")]
	if !strings.Contains(string(m), "application/vnd.oci.image.layer.v1.tar") {
		t.Fatalf("manifest has no layer: %s", m)
	}
	// The same binary gives the same archive, so caches compare equal.
	out2 := filepath.Join(dir, "img2.tar")
	if err := WriteArchive(out2, "testcluster.local/pause:1", bin); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if string(a) != string(b) {
		t.Error("two archives of the same binary differ")
	}
}

// An image of several files holds their directories and links, each once.
func TestImageLayerHoldsDirsAndLinks(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "busybox")
	if err := os.WriteFile(bin, []byte("#!"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := layerTar([]File{
		{Name: "bin/busybox", Src: bin, Mode: 0o755},
		{Name: "bin/sh", Link: "busybox"},
		{Name: "usr/local/bin/tool", Src: bin, Mode: 0o755},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(strings.NewReader(string(b)))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%c %s %s", h.Typeflag, h.Name, h.Linkname))
	}
	want := []string{"5 bin/ ", "0 bin/busybox ", "2 bin/sh busybox", "5 usr/ ", "5 usr/local/ ", "5 usr/local/bin/ ", "0 usr/local/bin/tool "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("layer entries\n%q\nwant\n%q", got, want)
	}
}
