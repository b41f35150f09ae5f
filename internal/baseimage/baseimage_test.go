package baseimage

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBuildBaseReadsTheFirstFROM(t *testing.T) {
	// The project's own Dockerfile: the stand-in must carry exactly its name.
	got, err := BuildBase(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !golangRef.MatchString(got) {
		t.Fatalf("Dockerfile build stage %q is not an image this tool can stand in for", got)
	}

	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	os.WriteFile(df, []byte("# syntax note\n\nfrom golang:1.26.8-trixie as build\nFROM scratch\n"), 0o644)
	if got, err := BuildBase(df); err != nil || got != "golang:1.26.8-trixie" {
		t.Fatalf("BuildBase = %q, %v", got, err)
	}
	os.WriteFile(df, []byte("# nothing\n"), 0o644)
	if _, err := BuildBase(df); err == nil {
		t.Fatal("no error for a Dockerfile without FROM")
	}
}

func TestGolangRef(t *testing.T) {
	for ref, want := range map[string]bool{
		"golang:1.26.8-bookworm":                   true,
		"golang:1.26-trixie":                       true,
		"docker.io/library/golang:1.26.8-bookworm": true,
		"golang:1.26.8-alpine":                     false,
		"golang:latest":                            false,
		"debian:bookworm":                          false,
	} {
		if got := golangRef.MatchString(ref); got != want {
			t.Errorf("%s: match = %v, want %v", ref, got, want)
		}
	}
}
