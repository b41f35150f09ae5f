//go:build e2e

// Package image tests the production container image in a real Docker
// engine: the seed's `docker build -t scalable-app:latest .` and
// `docker run -p 5000:5000 scalable-app`.
package image

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"scalable-app/internal/server"
	"scalable-app/tools/internal/baseimage"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
	"scalable-app/tools/internal/repo"
)

const (
	image = "scalable-app:latest"
	// The image is the static binary (16 MB with pgx, goose and the
	// Prometheus client) and the CA bundle. A base image, a shell or a
	// libc sneaking in would each cost more than the headroom.
	maxBytes = 20 << 20
	revision = "0123456789abcdef0123456789abcdef01234567"
)

// imageSuite is what the checks share: the runner, and the image built once.
type imageSuite struct {
	run     *command.Runner
	builder dockerengine.Builder
}

// TestImage starts a Docker engine when none runs (stopping it afterwards),
// provides the build stage's base image, builds the image once and runs
// the checks on it.
func TestImage(t *testing.T) {
	ctx := context.Background()
	s := &imageSuite{run: command.New(command.OS{}, os.Stderr)}
	engine, err := dockerengine.Ensure(ctx, s.run, dockerengine.Options{Log: os.Stderr})
	if err != nil {
		t.Fatalf("docker engine: %v", err)
	}
	t.Cleanup(func() { engine.Stop() })
	if s.builder, err = dockerengine.FindBuilder(ctx, s.run); err != nil {
		t.Fatal(err)
	}
	builder := s.builder
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := baseimage.Ensure(ctx, baseimage.Options{
		Run:        s.run,
		Host:       baseimage.ThisHost(),
		Dockerfile: filepath.Join(root, "Dockerfile"),
		CacheDir:   baseimage.DefaultCacheDir,
		Mirror:     "http://deb.debian.org/debian",
		Docker:     "docker",
		GOROOT:     runtime.GOROOT(),
		Log:        os.Stderr,
	}); err != nil {
		t.Fatalf("base image: %v", err)
	}
	// The seed's command, plus build arguments that embed the revision.
	if _, err := s.run.Exec(ctx, command.Cmd{What: "build the image", Name: builder.Command,
		Args: []string{"build", "--build-arg", "VERSION=v0.0.0-test", "--build-arg", "REVISION=" + revision, "-t", image, "."},
		Dir:  root, Env: builder.Env, Stdout: os.Stderr, Stderr: os.Stderr}); err != nil {
		t.Fatal(err)
	}
	t.Run("IsSmall", s.testImageIsSmall)
	t.Run("Config", s.testImageConfig)
	t.Run("RunServeStop", s.testRunServeStop)
	t.Run("CompileStepCachedAcrossEditsOutsideTheService", s.testCompileStepCached)
}

func (s *imageSuite) docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.run.Output(context.Background(), "docker "+args[0], "docker", args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func (s *imageSuite) testImageIsSmall(t *testing.T) {
	size, err := strconv.Atoi(s.docker(t, "image", "inspect", "-f", "{{.Size}}", image))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image size: %.1f MB", float64(size)/1e6)
	if size >= maxBytes {
		t.Fatalf("image is %d bytes, limit %d", size, maxBytes)
	}
}

func (s *imageSuite) testImageConfig(t *testing.T) {
	if got := s.docker(t, "image", "inspect", "-f", "{{.Config.User}}", image); got != "65532:65532" {
		t.Errorf("USER = %q, want numeric non-root 65532:65532", got)
	}
	if got := s.docker(t, "image", "inspect", "-f", "{{json .Config.ExposedPorts}}", image); !strings.Contains(got, `"5000/tcp"`) {
		t.Errorf("ExposedPorts = %s, want 5000/tcp", got)
	}
	out := s.docker(t, "run", "--rm", image, "--version")
	if !strings.Contains(out, "v0.0.0-test") || !strings.Contains(out, revision) {
		t.Errorf("--version in the image = %q, want the version and revision given at build", out)
	}
}

// testRunServeStop: docker run -p, the greeting through the published port,
// a non-root process, and docker stop well under 2 s with exit status 0.
func (s *imageSuite) testRunServeStop(t *testing.T) {
	port := freePort(t)
	name := fmt.Sprintf("scalable-app-test-%d", time.Now().UnixNano())
	s.docker(t, "run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:5000", port), image)
	t.Cleanup(func() { _ = s.run.Run(context.Background(), "remove the test container", "docker", "rm", "-f", name) })

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
			t.Fatalf("no 200 from %s within 20s (last error %v); logs:\n%s", url, err, s.docker(t, "logs", name))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != server.Greeting {
		t.Fatalf("GET / through the published port = %q, want %q", body, server.Greeting)
	}

	// docker top runs ps on the host: the header, then "PID UID" of the process.
	top := s.docker(t, "top", name, "-o", "pid,uid")
	if f := strings.Fields(top); len(f) != 4 || f[3] != "65532" {
		t.Errorf("docker top: %q, want the process running as uid 65532", top)
	}

	start := time.Now()
	s.docker(t, "stop", name)
	took := time.Since(start)
	t.Logf("docker stop took %s", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("docker stop took %s, want well under 2s (SIGTERM handled)", took)
	}
	if code := s.docker(t, "inspect", "-f", "{{.State.ExitCode}}", name); code != "0" {
		t.Errorf("exit status after docker stop = %s, want 0", code)
	}
	if logs := s.docker(t, "logs", name); !strings.Contains(logs, "shutdown complete") {
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
