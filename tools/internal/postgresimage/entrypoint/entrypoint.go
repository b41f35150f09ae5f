// Package entrypoint is the stand-in postgres image's entrypoint, with the
// official image's contract (docker-entrypoint.sh): on an empty PGDATA it
// runs initdb for POSTGRES_USER with POSTGRES_PASSWORD, creates
// POSTGRES_DB, opens host connections with scram-sha-256 and listens on
// every address; on a PGDATA that holds a database it only starts the
// server. Started as root, it prepares the directories and drops to the
// postgres user (uid 999) first, as the official image does with gosu.
package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"scalable-app/tools/internal/command"
)

// DefaultPGDATA is the official image's PGDATA.
const DefaultPGDATA = "/var/lib/postgresql/data"

// SocketDir is where Debian's PostgreSQL puts its Unix socket.
const SocketDir = "/var/run/postgresql"

// InitDir holds the scripts run once on a new database, as in the official image.
const InitDir = "/docker-entrypoint-initdb.d"

// Options are what Run acts on; the main passes the process's own.
type Options struct {
	Args   []string // the command, e.g. [postgres -c shared_buffers=64MB]
	Getenv func(string) string
	Euid   int // os.Geteuid(): 0 prepares the directories and drops to postgres
	Run    *command.Runner
	Stdout io.Writer
	// Exec replaces the process with the server (syscall.Exec in the main),
	// so that the server is PID 1 and gets the stop signal itself.
	Exec func(path string, argv []string) error
	// Root is a seam for tests: the directories above live under it.
	Root string
}

// ErrNoPassword is the refusal to create a database nobody can log in to
// safely over the network.
var ErrNoPassword = errors.New(`the database is uninitialized and the superuser password is not specified:
  set POSTGRES_PASSWORD to a non-empty value (e.g. docker run -e POSTGRES_PASSWORD=...),
  or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without a password
  (not recommended: anyone who can reach the port is the superuser)`)

// Run prepares the database and then execs the server; it returns only on
// failure.
func Run(ctx context.Context, o Options) error {
	args := o.Args
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		args = append([]string{"postgres"}, args...)
	}
	if args[0] != "postgres" {
		// Any other command (psql, bash, pg_dump) runs as given.
		return o.exec(args)
	}
	pgdata := o.env("PGDATA", DefaultPGDATA)
	if o.Euid == 0 {
		if err := o.asRoot(pgdata); err != nil {
			return err
		}
	} else if err := o.prepareDirs(pgdata, -1, -1); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(pgdata, "PG_VERSION")); err == nil {
		fmt.Fprintln(o.Stdout, "PostgreSQL Database directory appears to contain a database; Skipping initialization")
		return o.exec(args)
	}
	if err := o.initialize(ctx, pgdata); err != nil {
		return err
	}
	fmt.Fprintln(o.Stdout, "PostgreSQL init process complete; ready for start up.")
	return o.exec(args)
}

func (o Options) env(name, def string) string {
	if v := o.Getenv(name); v != "" {
		return v
	}
	return def
}

func (o Options) path(p string) string { return filepath.Join(o.Root, p) }

func (o Options) exec(args []string) error {
	path, err := lookPath(args[0], o.Getenv("PATH"))
	if err != nil {
		return err
	}
	return o.Exec(path, args)
}

// lookPath finds name in path without os/exec, which the Runner owns.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %s", name, path)
}

// asRoot gives the postgres user its directories and becomes that user.
func (o Options) asRoot(pgdata string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("find the postgres user: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("postgres user %s:%s: %w", u.Uid, u.Gid, err)
	}
	if err := o.prepareDirs(pgdata, uid, gid); err != nil {
		return err
	}
	// Go applies these to every thread of the process.
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("drop to the postgres user: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("drop to the postgres user: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("drop to the postgres user: %w", err)
	}
	return nil
}

// prepareDirs creates PGDATA (mode 0700, as the server demands) and the
// socket directory; with uid >= 0 (root) it also hands them to that user.
func (o Options) prepareDirs(pgdata string, uid, gid int) error {
	if err := os.MkdirAll(pgdata, 0o700); err != nil {
		return fmt.Errorf("create PGDATA %s: %w (mount a volume the container's user may write to, or set PGDATA to a directory inside it)", pgdata, err)
	}
	sock := o.path(SocketDir)
	if err := os.MkdirAll(sock, 0o3775); err != nil && uid >= 0 {
		return fmt.Errorf("create %s: %w", sock, err)
	}
	if uid >= 0 {
		// Only what is not the user's yet: a large database is not rewalked.
		err := filepath.WalkDir(pgdata, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
				return nil
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			return fmt.Errorf("give PGDATA to the postgres user: %w", err)
		}
		if err := os.Chown(sock, uid, gid); err != nil {
			return fmt.Errorf("give %s to the postgres user: %w", sock, err)
		}
		if err := os.Chmod(sock, 0o3775); err != nil {
			return fmt.Errorf("chmod %s: %w", sock, err)
		}
	}
	// As in the official image: best effort, a mount point may refuse it,
	// and then initdb says why.
	_ = os.Chmod(pgdata, 0o700)
	return nil
}

// initialize creates the database cluster, its superuser and database.
func (o Options) initialize(ctx context.Context, pgdata string) error {
	password := o.Getenv("POSTGRES_PASSWORD")
	hostAuth := o.env("POSTGRES_HOST_AUTH_METHOD", "scram-sha-256")
	if password == "" && hostAuth != "trust" {
		return ErrNoPassword
	}
	superuser := o.env("POSTGRES_USER", "postgres")
	db := o.env("POSTGRES_DB", superuser)

	args := []string{"-D", pgdata, "--username=" + superuser}
	var stdin io.Reader
	if password != "" {
		// Through a pipe, never on a command line or in a file.
		args = append(args, "--pwfile=/dev/stdin")
		stdin = strings.NewReader(password)
	}
	args = append(args, strings.Fields(o.Getenv("POSTGRES_INITDB_ARGS"))...)
	if _, err := o.Run.Exec(ctx, command.Cmd{What: "initialize the database cluster", Name: "initdb", Args: args,
		Stdin: stdin, Stdout: o.Stdout, Stderr: o.Stdout}); err != nil {
		return err
	}
	if err := appendLine(filepath.Join(pgdata, "pg_hba.conf"), "host all all all "+hostAuth); err != nil {
		return err
	}
	if err := appendLine(filepath.Join(pgdata, "postgresql.conf"), "listen_addresses = '*'"); err != nil {
		return err
	}

	// A server on the Unix socket only, for the set-up, as the official image does.
	ctl := func(what string, a ...string) error {
		_, err := o.Run.Exec(ctx, command.Cmd{What: what, Name: "pg_ctl", Args: append([]string{"-D", pgdata, "-w"}, a...),
			Stdout: o.Stdout, Stderr: o.Stdout})
		return err
	}
	// The server's output goes to a file, copied to the log afterwards: on
	// the runner's pipe, the detached server would hold it open past
	// pg_ctl's exit.
	serverLog := filepath.Join(pgdata, "setup-server.log")
	defer o.showLog(serverLog)
	if err := ctl("start the set-up server", "-l", serverLog, "-o", "-c listen_addresses='' -p 5432", "start"); err != nil {
		return err
	}
	setupErr := o.setup(ctx, superuser, db)
	if err := ctl("stop the set-up server", "-m", "fast", "stop"); err != nil {
		return errors.Join(setupErr, err)
	}
	return setupErr
}

// showLog copies the set-up server's log to the entrypoint's output and
// removes it from PGDATA.
func (o Options) showLog(path string) {
	if b, err := os.ReadFile(path); err == nil {
		o.Stdout.Write(b)
	}
	os.Remove(path)
}

// setup creates the database and runs the init scripts.
func (o Options) setup(ctx context.Context, superuser, db string) error {
	psql := func(what, dbname string, a ...string) error {
		args := append([]string{"-v", "ON_ERROR_STOP=1", "--no-psqlrc", "--no-password", "--username", superuser, "--dbname", dbname}, a...)
		_, err := o.Run.Exec(ctx, command.Cmd{What: what, Name: "psql", Args: args, Stdout: o.Stdout, Stderr: o.Stdout})
		return err
	}
	if db != "postgres" {
		if err := psql("create database "+db, "postgres", "-c", "CREATE DATABASE "+quoteIdent(db)); err != nil {
			return err
		}
	}
	scripts, err := filepath.Glob(filepath.Join(o.path(InitDir), "*"))
	if err != nil {
		return err
	}
	sort.Strings(scripts)
	for _, s := range scripts {
		switch {
		case strings.HasSuffix(s, ".sql"):
			fmt.Fprintf(o.Stdout, "running %s\n", s)
			if err := psql("run "+s, db, "-f", s); err != nil {
				return err
			}
		case strings.HasSuffix(s, ".sh"):
			fmt.Fprintf(o.Stdout, "running %s\n", s)
			if _, err := o.Run.Exec(ctx, command.Cmd{What: "run " + s, Name: "bash", Args: []string{s},
				Env: []string{"PGUSER=" + superuser, "PGDATABASE=" + db}, Stdout: o.Stdout, Stderr: o.Stdout}); err != nil {
				return err
			}
		default:
			fmt.Fprintf(o.Stdout, "ignoring %s\n", s)
		}
	}
	return nil
}

// quoteIdent quotes a name for SQL, doubling any double quote in it.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("configure the server: %w", err)
	}
	if _, err := fmt.Fprintf(f, "\n%s\n", line); err != nil {
		f.Close()
		return fmt.Errorf("configure the server: %w", err)
	}
	return f.Close()
}
