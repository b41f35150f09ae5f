//go:build e2e

// Package postgres tests the postgres image the manifests name (present,
// pulled, or the stand-in `make postgres-image` builds) against the
// official image's contract the manifests rely on: configuration, a
// superuser with a password over TCP, uid 999, a restart on its own data,
// a refusal without a password, and SIGINT as a fast, clean stop.
package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
	"scalable-app/tools/internal/postgresimage"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/internal/standin"
)

const password = "contract-test-password"

type suite struct {
	run   *command.Runner
	image string
}

func TestPostgresImage(t *testing.T) {
	ctx := context.Background()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{run: command.New(command.OS{}, os.Stderr)}
	if s.image, err = postgresimage.ManifestImage(filepath.Join(root, "k8s", "base", "postgres.yaml")); err != nil {
		t.Fatal(err)
	}
	engine, err := dockerengine.Ensure(ctx, s.run, dockerengine.Options{Log: os.Stderr})
	if err != nil {
		t.Fatalf("docker engine: %v", err)
	}
	t.Cleanup(func() { engine.Stop() })
	if err := postgresimage.Ensure(ctx, postgresimage.Options{
		Run: s.run, Host: standin.ThisHost(), Source: standin.Source{Run: s.run, Docker: "docker"},
		Ref: s.image, CacheDir: postgresimage.DefaultCacheDir, Mirror: "http://deb.debian.org/debian",
		ToolsDir: filepath.Join(root, "tools"), Log: os.Stderr,
	}); err != nil {
		t.Fatalf("postgres image: %v", err)
	}
	t.Run("Config", s.testConfig)
	t.Run("ServesItsSuperuserOverTCP", s.testServes)
	t.Run("RunsAs999AndRestartsOnItsData", s.testRestart)
	t.Run("RefusesWithoutPassword", s.testRefuses)
}

func (s *suite) docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.run.Output(context.Background(), "docker "+args[0], "docker", args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func (s *suite) testConfig(t *testing.T) {
	for format, want := range map[string]string{
		"{{json .Config.Entrypoint}}":   `["docker-entrypoint.sh"]`,
		"{{json .Config.Cmd}}":          `["postgres"]`,
		"{{.Config.StopSignal}}":        "SIGINT",
		"{{json .Config.ExposedPorts}}": `{"5432/tcp":{}}`,
		"{{json .Config.Volumes}}":      `{"/var/lib/postgresql/data":{}}`,
	} {
		if got := s.docker(t, "image", "inspect", "--format", format, s.image); got != want {
			t.Errorf("%s = %s, want %s", format, got, want)
		}
	}
	env := s.docker(t, "image", "inspect", "--format", `{{join .Config.Env "\n"}}`, s.image)
	if !slices.Contains(strings.Split(env, "\n"), "PGDATA=/var/lib/postgresql/data") {
		t.Errorf("PGDATA is not the official one; env:\n%s", env)
	}
	// The probes of k8s/base/postgres.yaml run pg_isready from PATH.
	if out := s.docker(t, "run", "--rm", "--network=none", "--entrypoint=pg_isready", s.image, "--version"); !strings.Contains(out, "PostgreSQL") {
		t.Errorf("pg_isready --version = %q", out)
	}
}

// logs is the container's output; the server writes to stderr.
func (s *suite) logs(t *testing.T, name string) string {
	t.Helper()
	var b strings.Builder
	if _, err := s.run.Exec(context.Background(), command.Cmd{What: "read the container's log", Name: "docker",
		Args: []string{"logs", name}, Stdout: &b, Stderr: &b}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// start runs the image detached, published on a free port of 127.0.0.1,
// and returns the container's name and a URL for the superuser.
func (s *suite) start(t *testing.T, args ...string) (name, url string) {
	t.Helper()
	name = fmt.Sprintf("postgres-contract-%d", time.Now().UnixNano())
	run := append([]string{"run", "-d", "--name", name, "-p", "127.0.0.1::5432",
		"-e", "POSTGRES_USER=scalable", "-e", "POSTGRES_DB=guestbook"}, args...)
	s.docker(t, append(run, s.image)...)
	t.Cleanup(func() { _ = s.run.Run(context.Background(), "remove the container", "docker", "rm", "-f", name) })
	addr := s.docker(t, "port", name, "5432/tcp")
	addr = strings.Fields(addr)[0] // IPv4 first; the second line may be IPv6
	return name, fmt.Sprintf("postgres://scalable:%s@%s/guestbook?sslmode=disable", password, addr)
}

// connect waits for the server to accept the superuser and returns the connection.
func (s *suite) connect(t *testing.T, name, url string) *pgx.Conn {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, url)
		cancel()
		if err == nil {
			t.Cleanup(func() { conn.Close(context.Background()) })
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection within 60 s: %v\nlogs:\n%s", err, s.logs(t, name))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *suite) testServes(t *testing.T) {
	name, url := s.start(t, "-e", "POSTGRES_PASSWORD="+password)
	conn := s.connect(t, name, url)
	ctx := context.Background()
	var version, method string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	_, tag, _ := strings.Cut(s.image, ":")
	major, _, _ := strings.Cut(tag, "-")
	if !strings.HasPrefix(version, major+".") {
		t.Errorf("server_version %s, want PostgreSQL %s (the tag)", version, major)
	}
	// The password was stored as SCRAM, the method host connections use.
	if err := conn.QueryRow(ctx, "SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = current_user").Scan(&method); err != nil {
		t.Fatal(err)
	}
	if method != "SCRAM-SHA-256" {
		t.Errorf("the superuser's password is stored as %q, want SCRAM-SHA-256", method)
	}
	wrong := strings.Replace(url, password, "not-"+password, 1)
	if c, err := pgx.Connect(ctx, wrong); err == nil {
		c.Close(ctx)
		t.Error("a wrong password was accepted over TCP")
	}
	top := s.docker(t, "top", name, "-o", "pid,uid,comm")
	for _, line := range strings.Split(top, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] != "999" {
			t.Errorf("a process of the container runs as uid %s, want 999: %q", f[1], line)
		}
	}

	start := time.Now()
	s.docker(t, "stop", name)
	took := time.Since(start)
	t.Logf("PostgreSQL %s; docker stop (SIGINT) took %s", version, took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("docker stop took %s: SIGINT is a fast shutdown, well under 5 s here", took)
	}
	if code := s.docker(t, "inspect", "-f", "{{.State.ExitCode}}", name); code != "0" {
		t.Errorf("exit status after docker stop = %s, want 0", code)
	}
	if logs := s.logs(t, name); !strings.Contains(logs, "database system is shut down") {
		t.Errorf("no clean shutdown in the logs:\n%s", logs)
	}
}

// testRestart runs as the manifests do (uid 999, PGDATA a subdirectory of
// the volume) and starts a second container on the first one's data.
func (s *suite) testRestart(t *testing.T) {
	volume := fmt.Sprintf("postgres-contract-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_ = s.run.Run(context.Background(), "remove the volume", "docker", "volume", "rm", "-f", volume)
	})
	args := []string{"--user", "999:999", "-v", volume + ":/var/lib/postgresql/data",
		"-e", "PGDATA=/var/lib/postgresql/data/pgdata", "-e", "POSTGRES_PASSWORD=" + password}
	ctx := context.Background()

	name, url := s.start(t, args...)
	conn := s.connect(t, name, url)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('written before the restart')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	s.docker(t, "stop", name)

	// The password given now is another one: an initialized database keeps its own.
	args[len(args)-1] = "POSTGRES_PASSWORD=ignored-on-existing-data"
	name, url = s.start(t, args...)
	conn = s.connect(t, name, url)
	var note string
	if err := conn.QueryRow(ctx, "SELECT note FROM kept").Scan(&note); err != nil {
		t.Fatalf("the data of the first container is not there: %v", err)
	}
	if logs := s.logs(t, name); !strings.Contains(logs, "Skipping initialization") {
		t.Errorf("the second start initialized again:\n%s", logs)
	}
}

func (s *suite) testRefuses(t *testing.T) {
	out, err := s.run.Output(context.Background(), "run without a password", "docker", "run", "--rm", "--network=none", s.image)
	if err == nil {
		t.Fatalf("the image started without POSTGRES_PASSWORD:\n%s", out)
	}
	if !strings.Contains(err.Error(), "POSTGRES_PASSWORD") {
		t.Errorf("the refusal does not name POSTGRES_PASSWORD: %v", err)
	}
}
