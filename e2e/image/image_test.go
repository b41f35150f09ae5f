//go:build e2e

// Package image tests the production container image in a real Docker
// engine: the seed's `docker build -t scalable-app:latest .` and
// `docker run -p 5000:5000 scalable-app`.
package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"scalable-app/internal/baseimage"
	"scalable-app/internal/dockerengine"
	"scalable-app/internal/server"
)

const (
	image    = "scalable-app:latest"
	maxBytes = 15 << 20
	revision = "0123456789abcdef0123456789abcdef01234567"
)

var builder dockerengine.Builder

func TestMain(m *testing.M) {
	os.Exit(setUp(m))
}

// setUp starts a Docker engine when none runs (stopping it afterwards),
// provides the build stage's base image, and builds the image once.
func setUp(m *testing.M) int {
	ctx := context.Background()
	engine, err := dockerengine.Ensure(ctx, dockerengine.Options{Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker engine:", err)
		return 1
	}
	defer engine.Stop()
	if builder, err = dockerengine.FindBuilder(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := baseimage.Ensure(ctx, baseimage.Options{
		Dockerfile: filepath.Join(root, "Dockerfile"),
		CacheDir:   baseimage.DefaultCacheDir,
		Mirror:     "http://deb.debian.org/debian",
		Docker:     "docker",
		GOROOT:     runtime.GOROOT(),
		Log:        os.Stderr,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "base image:", err)
		return 1
	}
	// The seed's command, plus build arguments that embed the revision.
	build := exec.Command(builder.Command, "build", "--build-arg", "VERSION=v0.0.0-test",
		"--build-arg", "REVISION="+revision, "-t", image, ".")
	build.Dir = root
	build.Env = append(os.Environ(), builder.Env...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "docker build:", err)
		return 1
	}
	return m.Run()
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("docker", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func TestImageIsSmall(t *testing.T) {
	size, err := strconv.Atoi(docker(t, "image", "inspect", "-f", "{{.Size}}", image))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image size: %.1f MB", float64(size)/1e6)
	if size >= maxBytes {
		t.Fatalf("image is %d bytes, limit %d", size, maxBytes)
	}
}

func TestImageConfig(t *testing.T) {
	if got := docker(t, "image", "inspect", "-f", "{{.Config.User}}", image); got != "65532:65532" {
		t.Errorf("USER = %q, want numeric non-root 65532:65532", got)
	}
	if got := docker(t, "image", "inspect", "-f", "{{json .Config.ExposedPorts}}", image); !strings.Contains(got, `"5000/tcp"`) {
		t.Errorf("ExposedPorts = %s, want 5000/tcp", got)
	}
	out := docker(t, "run", "--rm", image, "--version")
	if !strings.Contains(out, "v0.0.0-test") || !strings.Contains(out, revision) {
		t.Errorf("--version in the image = %q, want the version and revision given at build", out)
	}
}

// TestRunServeStop: docker run -p, the greeting through the published port,
// a non-root process, and docker stop well under 2 s with exit status 0.
func TestRunServeStop(t *testing.T) {
	port := freePort(t)
	name := fmt.Sprintf("scalable-app-test-%d", time.Now().UnixNano())
	docker(t, "run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:5000", port), image)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })

	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				body = string(b)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 200 from %s within 20s (last error %v); logs:\n%s", url, err, docker(t, "logs", name))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != server.Greeting {
		t.Fatalf("GET / through the published port = %q, want %q", body, server.Greeting)
	}

	// docker top runs ps on the host: the header, then "PID UID" of the process.
	top := docker(t, "top", name, "-o", "pid,uid")
	if f := strings.Fields(top); len(f) != 4 || f[3] != "65532" {
		t.Errorf("docker top: %q, want the process running as uid 65532", top)
	}

	start := time.Now()
	docker(t, "stop", name)
	took := time.Since(start)
	t.Logf("docker stop took %s", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("docker stop took %s, want well under 2s (SIGTERM handled)", took)
	}
	if code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", name); code != "0" {
		t.Errorf("exit status after docker stop = %s, want 0", code)
	}
	if logs := docker(t, "logs", name); !strings.Contains(logs, "shutdown complete") {
		t.Errorf("no graceful shutdown in the logs:\n%s", logs)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
