package entrypoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"scalable-app/tools/internal/command"
)

// harness runs the entrypoint as a non-root user on a temp PGDATA, with a
// scripted initdb (the real one runs in the image's e2e suite).
type harness struct {
	env    map[string]string
	pgdata string
	fake   *command.Fake
	execd  []string
	out    strings.Builder
}

func newHarness(t *testing.T, env map[string]string) *harness {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "postgres"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &harness{env: map[string]string{"PATH": bin, "PGDATA": filepath.Join(dir, "data", "pgdata")}}
	for k, v := range env {
		h.env[k] = v
	}
	h.pgdata = h.env["PGDATA"]
	h.fake = &command.Fake{Respond: func(c command.Cmd) (string, error) {
		if c.Name == "initdb" {
			for _, f := range []string{"PG_VERSION", "pg_hba.conf", "postgresql.conf"} {
				if err := os.WriteFile(filepath.Join(h.pgdata, f), []byte("# initdb\n"), 0o600); err != nil {
					return "", err
				}
			}
		}
		return "", nil
	}}
	return h
}

func (h *harness) run(t *testing.T, args ...string) error {
	t.Helper()
	return Run(context.Background(), Options{
		Args: args, Getenv: func(k string) string { return h.env[k] }, Euid: 1000,
		Run: command.New(h.fake, nil), Stdout: &h.out, Root: t.TempDir(),
		Exec: func(path string, argv []string) error {
			h.execd = append([]string{path}, argv...)
			return nil
		},
	})
}

func TestAnEmptyPGDATAIsInitializedThenTheServerExecd(t *testing.T) {
	h := newHarness(t, map[string]string{"POSTGRES_USER": "scalable", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "guestbook"})
	if err := h.run(t, "postgres", "-c", "shared_buffers=16MB"); err != nil {
		t.Fatalf("Run: %v\n%s", err, h.out.String())
	}
	var initdb command.Cmd
	for _, c := range h.fake.Calls() {
		if strings.Contains(c.Line(), "s3cret") {
			t.Errorf("the password is on a command line: %s", c.Line())
		}
		if c.Name == "initdb" {
			initdb = c
		}
	}
	if !slices.Contains(initdb.Args, "--username=scalable") || !slices.Contains(initdb.Args, "--pwfile=/dev/stdin") {
		t.Errorf("initdb args %q", initdb.Args)
	}
	lines := h.fake.Lines()
	// The set-up server logs to a file: on the runner's pipe it would hold
	// the pipe open past pg_ctl's exit.
	want := []string{"initdb", "pg_ctl -D " + h.pgdata + " -w -l " + filepath.Join(h.pgdata, "setup-server.log") + " -o", "psql", "pg_ctl -D " + h.pgdata + " -w -m fast stop"}
	if len(lines) != len(want) {
		t.Fatalf("commands %q", lines)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("command %d is %q, want %q...", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[2], `CREATE DATABASE \"guestbook\"`) || !strings.Contains(lines[2], "--username scalable") {
		t.Errorf("database not created as the superuser: %s", lines[2])
	}
	hba, _ := os.ReadFile(filepath.Join(h.pgdata, "pg_hba.conf"))
	conf, _ := os.ReadFile(filepath.Join(h.pgdata, "postgresql.conf"))
	if !strings.HasSuffix(string(hba), "host all all all scram-sha-256\n") || !strings.Contains(string(conf), "listen_addresses = '*'") {
		t.Errorf("pg_hba.conf:\n%s\npostgresql.conf:\n%s", hba, conf)
	}
	if st, err := os.Stat(h.pgdata); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("PGDATA mode: %v %v", st.Mode(), err)
	}
	if got := strings.Join(h.execd[1:], " "); got != "postgres -c shared_buffers=16MB" || !strings.HasSuffix(h.execd[0], "/bin/postgres") {
		t.Errorf("exec'd %q", h.execd)
	}
}

func TestTheDefaultDatabaseIsTheUsers(t *testing.T) {
	h := newHarness(t, map[string]string{"POSTGRES_PASSWORD": "x"})
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	// User postgres, database postgres: initdb made it already.
	for _, l := range h.fake.Lines() {
		if strings.HasPrefix(l, "psql") {
			t.Errorf("ran %s", l)
		}
	}
	if strings.Join(h.execd[1:], " ") != "postgres" {
		t.Errorf("exec'd %q", h.execd)
	}
}

func TestNoPasswordIsRefused(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.run(t, "postgres"); !errors.Is(err, ErrNoPassword) {
		t.Fatalf("Run = %v, want ErrNoPassword", err)
	}
	if len(h.fake.Calls()) != 0 || h.execd != nil {
		t.Errorf("ran %q, exec'd %q", h.fake.Lines(), h.execd)
	}
	// trust is the one way to go without a password, and it says so.
	h = newHarness(t, map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"})
	if err := h.run(t, "postgres"); err != nil {
		t.Fatal(err)
	}
	hba, _ := os.ReadFile(filepath.Join(h.pgdata, "pg_hba.conf"))
	if !strings.HasSuffix(string(hba), "host all all all trust\n") {
		t.Errorf("pg_hba.conf:\n%s", hba)
	}
}

func TestAnExistingDatabaseIsOnlyStarted(t *testing.T) {
	h := newHarness(t, nil) // no password needed any more
	if err := os.MkdirAll(h.pgdata, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.pgdata, "PG_VERSION"), []byte("17\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.run(t, "-c", "max_connections=20"); err != nil {
		t.Fatal(err)
	}
	if len(h.fake.Calls()) != 0 || strings.Join(h.execd[1:], " ") != "postgres -c max_connections=20" {
		t.Errorf("ran %q, exec'd %q", h.fake.Lines(), h.execd)
	}
}

func TestAnotherCommandRunsAsGiven(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.run(t, "/bin/true", "x"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(h.execd, " ") != "/bin/true /bin/true x" || len(h.fake.Calls()) != 0 {
		t.Errorf("exec'd %q, ran %q", h.execd, h.fake.Lines())
	}
}
