package baseimage

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
)

func TestBuildBaseReadsTheFirstFROM(t *testing.T) {
	// The project's own Dockerfile: the stand-in must carry exactly its name.
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	got, err := BuildBase(filepath.Join(root, "Dockerfile"))
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

// decide runs Ensure against a fake docker: present says whether the image
// is local, pullErr how `docker pull` ends. The archive a stand-in would
// import is already cached, so a stand-in is one `docker import`.
func decide(t *testing.T, host Host, present bool, pullErr error) ([]string, error) {
	t.Helper()
	dir := t.TempDir()
	goVersion := strings.TrimPrefix(runtime.Version(), "go")
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte("FROM golang:"+goVersion+"-bookworm AS build\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "golang-"+goVersion+"-bookworm-rootfs.tar"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		switch {
		case strings.HasPrefix(c.Line(), "docker image inspect") && !present:
			return "", errors.New("Error: No such image")
		case strings.HasPrefix(c.Line(), "docker pull"):
			return "", pullErr
		}
		return "", nil
	}}
	_, err := Ensure(context.Background(), Options{Run: command.New(fake, nil), Host: host, Dockerfile: df,
		CacheDir: dir, Docker: "docker", Log: io.Discard})
	var verbs []string
	for _, c := range fake.Calls() {
		verbs = append(verbs, c.Name+" "+c.Args[0])
	}
	return verbs, err
}

func TestEnsurePullsBeforeBuildingAStandIn(t *testing.T) {
	root := Host{GOOS: "linux", EUID: 0}
	noRegistry := errors.New("dial tcp: lookup registry-1.docker.io: no such host")

	if got, err := decide(t, root, true, nil); err != nil || strings.Join(got, ",") != "docker image" {
		t.Errorf("image present: ran %q, %v; want only the look-up", got, err)
	}
	if got, err := decide(t, root, false, nil); err != nil || strings.Join(got, ",") != "docker image,docker pull" {
		t.Errorf("pull succeeds: ran %q, %v; want look-up and pull, no stand-in", got, err)
	}
	if got, err := decide(t, root, false, noRegistry); err != nil || strings.Join(got, ",") != "docker image,docker pull,docker import" {
		t.Errorf("pull fails as root on Linux: ran %q, %v; want the stand-in imported", got, err)
	}
	for _, host := range []Host{{GOOS: "linux", EUID: 1000}, {GOOS: "darwin", EUID: 0}} {
		got, err := decide(t, host, false, noRegistry)
		if err == nil || !strings.Contains(err.Error(), "cannot pull golang:") || !strings.Contains(err.Error(), "cannot build a stand-in here") ||
			!strings.Contains(err.Error(), "no such host") {
			t.Errorf("%+v: error %v; want cannot pull and cannot build a stand-in, with the pull's error", host, err)
		}
		if strings.Join(got, ",") != "docker image,docker pull" {
			t.Errorf("%+v: ran %q; want no stand-in attempted", host, got)
		}
	}
}
