// Package postgresimage provides the official postgres image the manifests
// name (k8s/base/postgres.yaml): present, pulled, or, where no registry
// answers, a stand-in under the same name built from Debian's PostgreSQL
// packages (mmdebstrap) and the Go entrypoint in ./entrypoint.
//
// The stand-in keeps the official image's contract, as far as anything
// outside the image can see: the postgres user and group are 999, PGDATA is
// /var/lib/postgresql/data (a volume), the server binaries are first on PATH
// (pg_isready for probes), the entrypoint is docker-entrypoint.sh with
// command postgres, the stop signal is SIGINT (a fast shutdown), port 5432,
// LANG en_US.utf8. It differs in what it says about itself: PG_VERSION is
// Debian's version of the package, and a label names it a stand-in.
package postgresimage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"scalable-app/tools/internal/aptget"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/progress"
	"scalable-app/tools/internal/standin"
)

// Options configure Ensure.
type Options struct {
	Run      *command.Runner
	Host     standin.Host
	Source   standin.Source
	Ref      string // e.g. postgres:17-trixie
	CacheDir string // where root filesystem archives are kept, per version
	Mirror   string // Debian mirror
	ToolsDir string // the tools module, whose cmd/pg-entrypoint is built into the image
	Log      io.Writer
}

// DefaultCacheDir keeps the archives outside any checkout, so a fresh clone
// reuses them.
const DefaultCacheDir = "/var/cache/scalable-app/postgresimage"

// ref matches the official tags this package can stand in for.
var ref = regexp.MustCompile(`^(?:docker\.io/(?:library/)?)?postgres:(\d+)-(bookworm|trixie)$`)

// debianMajor is the PostgreSQL major each Debian release packages: the
// stand-in is built only where Debian has the tag's major.
var debianMajor = map[string]string{"bookworm": "15", "trixie": "17"}

// ManifestImage returns the postgres image a manifest names.
func ManifestImage(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read the postgres image: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "- ")
		v, ok := strings.CutPrefix(line, "image:")
		if v = strings.Trim(strings.TrimSpace(v), `"'`); ok && ref.MatchString(v) {
			return v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "", fmt.Errorf("%s names no postgres:<major>-<debian> image", path)
}

// Ensure makes o.Ref available to Docker and says how.
func Ensure(ctx context.Context, o Options) error {
	say := progress.New(o.Log).Printf
	m := ref.FindStringSubmatch(o.Ref)
	if m == nil {
		return fmt.Errorf("%s is not an official postgres:<major>-<debian> image this tool knows", o.Ref)
	}
	major, suite := m[1], m[2]
	work, err := os.MkdirTemp("", "postgres-image-")
	if err != nil {
		return fmt.Errorf("create build context: %w", err)
	}
	defer os.RemoveAll(work)

	// A stand-in built here says so in a label, with its entrypoint's
	// digest: one built from an older entrypoint is built again.
	out, err := o.Run.Output(ctx, "look up image "+o.Ref, o.Source.Docker, "image", "inspect",
		"--format", `{{index .Config.Labels "`+entrypointLabel+`"}}`, o.Ref)
	var digest string
	if builtHere := strings.TrimSpace(string(out)); err == nil && builtHere != "" {
		if digest, err = o.buildEntrypoint(ctx, work); err != nil {
			return err
		}
		if builtHere == digest {
			say("%s is present (a stand-in with the current entrypoint)", o.Ref)
			return nil
		}
		say("%s is a stand-in with an older entrypoint: building it again", o.Ref)
	} else {
		how, pullErr := o.Source.Local(ctx, o.Ref)
		if pullErr == nil {
			say("%s is %s", o.Ref, how)
			return nil
		}
		if err := o.Host.CanBuild(o.Ref, "postgres-image"); err != nil {
			return fmt.Errorf("%w\n%w", err, pullErr)
		}
		if debianMajor[suite] != major {
			return fmt.Errorf("cannot pull %s, and Debian %s packages PostgreSQL %s, not %s: no faithful stand-in can be built\n%w",
				o.Ref, suite, debianMajor[suite], major, pullErr)
		}
		say("cannot pull %s (%s): building a stand-in from Debian %s's postgresql-%s", o.Ref, standin.FirstLine(pullErr.Error()), suite, major)
	}
	if digest == "" {
		if digest, err = o.buildEntrypoint(ctx, work); err != nil {
			return err
		}
	}

	archive := filepath.Join(o.CacheDir, fmt.Sprintf("postgres-%s-%s-rootfs.tar", major, suite))
	if _, err := os.Stat(archive); err == nil {
		say("reusing %s", archive)
	} else {
		say("creating the root filesystem (mmdebstrap, about two minutes once)")
		if err := buildRootfs(ctx, o, major, suite, archive); err != nil {
			return err
		}
	}

	base := fmt.Sprintf("scalable-app/postgres-rootfs:%s-%s", major, suite)
	say("importing the root filesystem as %s", base)
	if err := o.Run.Run(ctx, "import the root filesystem", o.Source.Docker, "import", archive, base); err != nil {
		return err
	}
	out, err = o.Run.Output(ctx, "read the packaged PostgreSQL version", o.Source.Docker,
		"run", "--rm", "--network=none", base, "dpkg-query", "-W", "-f=${Version}", "postgresql-"+major)
	if err != nil {
		return err
	}
	version := strings.TrimSpace(string(out))
	if err := os.WriteFile(filepath.Join(work, "Dockerfile"), []byte(dockerfile(base, o.Ref, major, suite, version, digest)), 0o644); err != nil {
		return fmt.Errorf("write the stand-in's Dockerfile: %w", err)
	}
	say("building %s (PostgreSQL %s)", o.Ref, version)
	if err := o.Run.Run(ctx, "build the stand-in "+o.Ref, o.Source.Docker, "build", "-q", "-t", o.Ref, work); err != nil {
		return err
	}
	say("%s ready", o.Ref)
	return nil
}

// entrypointLabel marks a stand-in built here, with its recipe's digest.
const entrypointLabel = "io.scalable-app.standin.entrypoint"

// buildEntrypoint builds cmd/pg-entrypoint into dir and returns the digest
// of the stand-in's recipe: the entrypoint, the hooks and the Dockerfile.
func (o Options) buildEntrypoint(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pg-entrypoint")
	_, err := o.Run.Exec(ctx, command.Cmd{
		What: "build the postgres entrypoint", Name: "go", Dir: o.ToolsDir,
		Args: []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", bin, "./cmd/pg-entrypoint"},
		// go.mod may ask for a newer Go than the installed one, which fetches it.
		Env: []string{"CGO_ENABLED=0", "GOTOOLCHAIN=auto"},
	})
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("read the entrypoint: %w", err)
	}
	// The recipe is part of the digest: a change to it builds again too.
	h := sha256.New()
	for _, part := range [][]byte{b, []byte(essentialHook), []byte(customizeHook), []byte(dockerfile("", "", "", "", "", ""))} {
		h.Write(part)
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil)), nil
}

// dockerfile is the stand-in's configuration on the imported root
// filesystem, with the official image's defaults.
func dockerfile(base, ref, major, suite, version, entrypointDigest string) string {
	return fmt.Sprintf(`FROM %[1]s
COPY pg-entrypoint /usr/local/bin/pg-entrypoint
# The socket directory, writable by the postgres user and any other uid a
# pod runs as (mmdebstrap leaves /run empty).
RUN install -d -o 999 -g 999 -m 3777 /var/run/postgresql
ENV PG_MAJOR=%[3]s PG_VERSION=%[5]s \
    PATH=/usr/lib/postgresql/%[3]s/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data LANG=en_US.utf8
LABEL org.opencontainers.image.title=postgres \
      org.opencontainers.image.version=%[5]s \
      org.opencontainers.image.description="stand-in for %[2]s: Debian %[4]s's postgresql-%[3]s %[5]s and a Go entrypoint with the official image's contract" \
      %[7]s=%[6]s
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
`, base, ref, major, suite, version, entrypointDigest, entrypointLabel)
}

// The hooks run in mmdebstrap with the root filesystem as $1. Before any
// PostgreSQL package: the postgres user and group at 999 (so the package
// adopts them, as in the official image) and no cluster created by the
// package, whose place is taken by the entrypoint's initdb.
const essentialHook = `set -e
printf 'postgres:x:999:\n' >> "$1/etc/group"
printf 'postgres:!:::\n' >> "$1/etc/gshadow"
printf 'postgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n' >> "$1/etc/passwd"
printf 'postgres:*:20000:0:99999:7:::\n' >> "$1/etc/shadow"
mkdir -p "$1/etc/postgresql-common/createcluster.d"
printf 'create_main_cluster = false\n' > "$1/etc/postgresql-common/createcluster.d/no-main-cluster.conf"`

// After: the locale, the directories any uid may use (the official image's
// modes, so a pod running as 999 or another uid starts), the entrypoint's
// official name, and no package lists or caches.
const customizeHook = `set -e
chroot "$1" localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8
install -d -o 999 -g 999 -m 1777 "$1/var/lib/postgresql/data"
install -d -m 0755 "$1/docker-entrypoint-initdb.d"
ln -sf pg-entrypoint "$1/usr/local/bin/docker-entrypoint.sh"
rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*`

func buildRootfs(ctx context.Context, o Options, major, suite, archive string) error {
	if err := aptget.Install(ctx, o.Run, o.Log, "mmdebstrap"); err != nil {
		return fmt.Errorf("install mmdebstrap: %w", err)
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return fmt.Errorf("create cache directory: %w", err)
	}
	tmp := archive + ".partial.tar"
	defer os.Remove(tmp)
	err := o.Run.Run(ctx, "mmdebstrap Debian "+suite+" with postgresql-"+major, "mmdebstrap",
		"--variant=minbase",
		"--include=postgresql-"+major+",locales",
		`--aptopt=APT::Install-Recommends "false"`,
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--essential-hook="+essentialHook,
		"--customize-hook="+customizeHook,
		suite, tmp, o.Mirror)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, archive); err != nil {
		return fmt.Errorf("store root filesystem archive: %w", err)
	}
	return nil
}
