// Package pgtest starts a real PostgreSQL server for tests: initdb in a
// temporary directory, the host's server binaries, a free port on
// 127.0.0.1 and the Unix socket in the same directory, so nothing is shared
// with a PostgreSQL already running on the machine. One server per test
// package (start it in TestMain), a fresh database per test.
//
// TEST_DATABASE_URL names an existing server to use instead; its user must
// be allowed to CREATE DATABASE. Tests that stop the server cannot run then.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrExternal: the server is TEST_DATABASE_URL's, which tests cannot stop.
var ErrExternal = errors.New("pgtest: the server is TEST_DATABASE_URL's, not one these tests started")

// Options tune Start.
type Options struct {
	// Prepare runs once on the template that NewDatabase copies (to apply
	// the migrations, say), given its URL.
	Prepare func(ctx context.Context, url string) error
}

// Server is a PostgreSQL server for tests.
type Server struct {
	admin    *url.URL // superuser, database postgres
	external bool
	template string
	next     atomic.Int64

	// A server started here.
	dir, bin string
	port     int
	cred     *syscall.Credential // the postgres user, when the tests run as root
	exited   chan error          // the postmaster's exit; nil while stopped
	pid      int                 // the postmaster's, while it runs
}

const templateName = "pgtest_template"

// Start starts a server, or connects to TEST_DATABASE_URL's, and creates
// the template of NewDatabase.
func Start(opts Options) (*Server, error) {
	s, err := start()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.template = fmt.Sprintf("%s_%d", templateName, os.Getpid())
	if err := s.exec(ctx, "postgres", `CREATE DATABASE `+pgx.Identifier{s.template}.Sanitize()); err != nil {
		s.Close()
		return nil, fmt.Errorf("pgtest: create the template: %w", err)
	}
	if opts.Prepare != nil {
		if err := opts.Prepare(ctx, s.URL(s.template)); err != nil {
			s.Close()
			return nil, fmt.Errorf("pgtest: prepare the template: %w", err)
		}
	}
	return s, nil
}

func start() (*Server, error) {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		admin, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("pgtest: TEST_DATABASE_URL: %w", err)
		}
		return &Server{admin: admin, external: true}, nil
	}
	bin, err := serverBinaries()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user
		// that Debian's package creates.
		if s.cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			os.RemoveAll(s.dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	// --no-sync and the settings in run: durability is not what tests need.
	if err := s.command("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust",
		"--no-locale", "-E", "UTF8", "--no-sync").Run(); err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("pgtest: initdb: %w (see %s)", err, s.logFile())
	}
	// A free port can be taken by another process before the server binds
	// it: try a few.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err == nil {
			err = s.run()
		}
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	s.admin = &url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path: "/postgres", RawQuery: "sslmode=disable"}
	return s, nil
}

// serverBinaries finds the directory of initdb and postgres: on PATH, else
// Debian's /usr/lib/postgresql/<major>/bin (the newest major), installing
// Debian's postgresql package when missing and root.
func serverBinaries() (string, error) {
	find := func() string {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
		slices.SortFunc(dirs, func(a, b string) int { return majorOf(a) - majorOf(b) })
		if len(dirs) == 0 {
			return ""
		}
		return filepath.Dir(dirs[len(dirs)-1])
	}
	if dir := find(); dir != "" {
		return dir, nil
	}
	const advice = "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql) or set TEST_DATABASE_URL to a database whose user may CREATE DATABASE"
	if _, err := exec.LookPath("apt-get"); os.Geteuid() != 0 || err != nil {
		return "", errors.New("pgtest: no PostgreSQL server binaries (initdb) found: " + advice)
	}
	if err := aptInstall("postgresql"); err != nil {
		return "", fmt.Errorf("pgtest: %w; %s", err, advice)
	}
	if dir := find(); dir != "" {
		return dir, nil
	}
	return "", errors.New("pgtest: apt-get installed postgresql but no initdb was found: " + advice)
}

func majorOf(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// aptInstall installs Debian packages, updating the package lists once if
// the first try fails. Test packages run in parallel: apt waits for
// another's dpkg lock instead of failing.
func aptInstall(pkgs ...string) error {
	apt := func(args ...string) error {
		cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300", "-y", "-q"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out))
		}
		return nil
	}
	install := append([]string{"install", "--no-install-recommends"}, pkgs...)
	fmt.Fprintf(os.Stderr, "pgtest: installing %s with apt-get\n", strings.Join(pkgs, " "))
	if err := apt(install...); err == nil {
		return nil
	}
	if err := apt("update"); err != nil {
		return err
	}
	return apt(install...)
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, PostgreSQL needs a user of its own and there is no user postgres (Debian's postgresql package creates it): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) data() string    { return filepath.Join(s.dir, "data") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "postgres.log") }

// command is a server binary run as the server's user, its output appended
// to the log file.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir // the postgres user may not enter the test's directory
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if f, err := os.OpenFile(s.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
		if s.cred != nil {
			f.Chown(int(s.cred.Uid), int(s.cred.Gid))
		}
	}
	return cmd
}

// run starts the postmaster as a child of the test process and waits until
// it accepts connections. If the test process dies, the kernel sends the
// postmaster SIGINT (PostgreSQL's fast shutdown), so no server outlives its
// tests.
func (s *Server) run() error {
	started, exited := make(chan error, 1), make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child ends:
		// keep this one alive for as long as the child runs.
		runtime.LockOSThread()
		cmd := s.command("postgres", "-D", s.data(), "-p", strconv.Itoa(s.port), "-k", s.dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=200")
		cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		s.pid = cmd.Process.Pid
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.exited = exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", s.port))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case err := <-exited:
			s.exited = nil
			return fmt.Errorf("pgtest: postgres exited at start (%v); see %s", err, s.logFile())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("pgtest: postgres not accepting connections after 30 s: %w (see %s)", err, s.logFile())
		}
	}
}

// Stop shuts the server down the way an outage does: pg_ctl stop -m fast
// (open sessions are terminated).
func (s *Server) Stop() error {
	if s.external {
		return ErrExternal
	}
	if s.exited == nil {
		return nil
	}
	if err := s.command("pg_ctl", "stop", "-D", s.data(), "-m", "fast", "-w").Run(); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w (see %s)", err, s.logFile())
	}
	<-s.exited
	s.exited = nil
	return nil
}

// Pid is the postmaster's process id (its backends are its children), 0
// for TEST_DATABASE_URL's server or a stopped one.
func (s *Server) Pid() int {
	if s.exited == nil {
		return 0
	}
	return s.pid
}

// Restart starts a stopped server again, on the same port and data.
func (s *Server) Restart() error {
	if s.external {
		return ErrExternal
	}
	return s.run()
}

// Close stops the server and removes its directory; on TEST_DATABASE_URL's
// server it drops the template.
func (s *Server) Close() error {
	if s.external {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.exec(ctx, "postgres", `DROP DATABASE IF EXISTS `+pgx.Identifier{s.template}.Sanitize()+` WITH (FORCE)`)
	}
	err := s.Stop()
	return errors.Join(err, os.RemoveAll(s.dir))
}

// URL is the connection URL of a database on the server, as its superuser.
func (s *Server) URL(database string) string {
	u := *s.admin
	u.Path = "/" + database
	return u.String()
}

// NewDatabase creates a database for one test, a copy of the template
// (Options.Prepare's), dropped when the test ends, and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string { return s.newDatabase(t, s.template) }

// NewEmptyDatabase creates an empty database for one test, dropped when
// the test ends, and returns its URL.
func (s *Server) NewEmptyDatabase(t testing.TB) string { return s.newDatabase(t, "template0") }

func (s *Server) newDatabase(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("pgtest_%d_%d", os.Getpid(), s.next.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.exec(ctx, "postgres", fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize())); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A test may have left the server stopped.
		if s.exited == nil && !s.external {
			return
		}
		if err := s.exec(ctx, "postgres", `DROP DATABASE `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return s.URL(name)
}

// Exec runs SQL statements in a database of the server, as its superuser.
func (s *Server) Exec(ctx context.Context, database, sql string) error {
	return s.exec(ctx, database, sql)
}

func (s *Server) exec(ctx context.Context, database, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL(database))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Main is TestMain's body for a package of database tests: it starts the
// server, hands it to use, runs the tests and stops the server.
func Main(m *testing.M, opts Options, use func(*Server)) {
	s, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	use(s)
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}
