// Package baseimage provides the Dockerfile's build-stage base image: when
// the official golang image the Dockerfile names is not local, it pulls it,
// and only when the pull fails too (a machine with no registry) does it
// create a stand-in with the same name from Debian's packages (debootstrap)
// and the local Go toolchain, which needs Linux and root.
//
// The stand-in matches what the build relies on in the official image: the
// same Debian release, Go at /usr/local/go of the tagged version, GOPATH=/go,
// PATH, GOTOOLCHAIN=local, git, gcc and CA certificates.
package baseimage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"scalable-app/tools/internal/aptget"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/progress"
	"scalable-app/tools/internal/standin"
)

// Options configure Ensure.
type Options struct {
	Run         *command.Runner
	Host        Host          // where this runs: whether a stand-in can be built
	PullTimeout time.Duration // bound on `docker pull`; standin.DefaultPullTimeout when 0
	Dockerfile  string        // path of the Dockerfile whose build stage is read
	CacheDir    string        // where the root filesystem archive is kept between runs
	Mirror      string        // Debian mirror for debootstrap
	Docker      string        // docker client command
	GOROOT      string        // local Go installation copied into the image
	Log         io.Writer     // progress lines
}

// Host is what decides whether a stand-in can be built here.
type Host = standin.Host

// ThisHost describes the running process, for mains to pass in Options.
func ThisHost() Host { return standin.ThisHost() }

// DefaultCacheDir keeps the archive outside any checkout, so a fresh clone
// reuses it.
const DefaultCacheDir = "/var/cache/scalable-app/baseimage"

// packages are those of the official image's base (buildpack-deps:*-scm)
// that a Go build uses.
func packages() []string {
	return []string{"ca-certificates", "curl", "git", "gcc", "libc6-dev", "make", "pkg-config", "openssh-client"}
}

const hostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// golangRef matches the official image references this package can stand in
// for, such as golang:1.26.8-bookworm.
var golangRef = regexp.MustCompile(`^(?:docker\.io/(?:library/)?)?golang:(\d+\.\d+(?:\.\d+)?)-(bookworm|trixie|bullseye)$`)

// BuildBase returns the image reference of the Dockerfile's first FROM line.
func BuildBase(dockerfile string) (string, error) {
	f, err := os.Open(dockerfile)
	if err != nil {
		return "", fmt.Errorf("read build stage base: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && strings.EqualFold(fields[0], "FROM") {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", dockerfile, err)
	}
	return "", fmt.Errorf("%s has no FROM line", dockerfile)
}

// Ensure makes the Dockerfile's build-stage base image available locally:
// nothing when it is present, else `docker pull`, else (Linux, root) the
// stand-in. It returns the image reference.
func Ensure(ctx context.Context, o Options) (string, error) {
	say := progress.New(o.Log).Printf
	ref, err := BuildBase(o.Dockerfile)
	if err != nil {
		return "", err
	}
	how, pullErr := standin.Source{Run: o.Run, Docker: o.Docker, PullTimeout: o.PullTimeout}.Local(ctx, ref)
	if pullErr == nil {
		say("base image %s is %s", ref, how)
		return ref, nil
	}
	if err := o.Host.CanBuild(ref, "base-image"); err != nil {
		return "", fmt.Errorf("%w\n%w", err, pullErr)
	}
	say("cannot pull %s (%s): building a stand-in", ref, standin.FirstLine(pullErr.Error()))
	m := golangRef.FindStringSubmatch(ref)
	if m == nil {
		return "", fmt.Errorf("base image %s is missing and is not an official golang:<version>-<debian> image this tool can stand in for", ref)
	}
	goVersion, suite := m[1], m[2]
	if local := strings.TrimPrefix(runtime.Version(), "go"); local != goVersion && !strings.HasPrefix(local, goVersion+".") {
		return "", fmt.Errorf("base image %s is missing and the local Go is %s, not %s: install Go %s to create a faithful stand-in", ref, local, goVersion, goVersion)
	}

	archive := filepath.Join(o.CacheDir, fmt.Sprintf("golang-%s-%s-rootfs.tar", goVersion, suite))
	if _, err := os.Stat(archive); err != nil {
		say("creating the root filesystem of %s (Debian %s via debootstrap, Go %s from %s); takes a few minutes once", ref, suite, goVersion, o.GOROOT)
		if err := buildRootfs(ctx, o, suite, archive, say); err != nil {
			return "", err
		}
	} else {
		say("reusing %s", archive)
	}

	say("importing %s", ref)
	goPath := "/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	args := []string{"import",
		"--change", "ENV PATH=" + goPath,
		"--change", "ENV GOPATH=/go",
		"--change", "ENV GOLANG_VERSION=" + goVersion,
		"--change", "ENV GOTOOLCHAIN=local",
		"--change", "WORKDIR /go",
		"--change", `CMD ["bash"]`,
		"--message", "stand-in for " + ref + " built from Debian packages and the local Go toolchain",
		archive, ref,
	}
	if err := o.Run.Run(ctx, "import stand-in base image "+ref, o.Docker, args...); err != nil {
		return "", err
	}
	say("base image %s ready", ref)
	return ref, nil
}

func buildRootfs(ctx context.Context, o Options, suite, archive string, say func(string, ...any)) error {
	if err := aptget.Install(ctx, o.Run, o.Log, "debootstrap"); err != nil {
		return fmt.Errorf("install debootstrap: %w", err)
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return fmt.Errorf("create cache directory: %w", err)
	}
	work, err := os.MkdirTemp(o.CacheDir, "rootfs-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "rootfs")

	say("debootstrap %s from %s", suite, o.Mirror)
	if err := o.Run.Run(ctx, "debootstrap Debian "+suite, "debootstrap", "--variant=minbase", "--include="+strings.Join(packages(), ","),
		suite, rootfs, o.Mirror); err != nil {
		return err
	}
	// The package cache and lists are not part of the official image.
	for _, dir := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		if err := clearDir(filepath.Join(rootfs, dir)); err != nil {
			return err
		}
	}

	// Trust what this machine trusts: where a TLS-intercepting proxy stands
	// between it and the module proxy, its CA is in the host's bundle.
	if err := o.Run.Run(ctx, "copy the host's CA certificates", "cp", hostCABundle, filepath.Join(rootfs, hostCABundle)); err != nil {
		return err
	}

	say("copying Go from %s", o.GOROOT)
	if err := o.Run.Run(ctx, "copy the Go toolchain", "cp", "-a", o.GOROOT, filepath.Join(rootfs, "usr/local/go")); err != nil {
		return err
	}
	for _, dir := range []string{"go/src", "go/bin"} {
		if err := os.MkdirAll(filepath.Join(rootfs, dir), 0o777); err != nil {
			return fmt.Errorf("create GOPATH: %w", err)
		}
	}
	// As in the official image, any user may write to GOPATH.
	if err := os.Chmod(filepath.Join(rootfs, "go"), 0o1777); err != nil {
		return fmt.Errorf("chmod GOPATH: %w", err)
	}

	say("archiving the root filesystem")
	tmp := archive + ".partial"
	if err := o.Run.Run(ctx, "archive the root filesystem", "tar", "--numeric-owner", "-C", rootfs, "-cf", tmp, "."); err != nil {
		return err
	}
	if err := os.Rename(tmp, archive); err != nil {
		return fmt.Errorf("store root filesystem archive: %w", err)
	}
	return nil
}

func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Name() == "partial" || e.Name() == "lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clear %s: %w", dir, err)
		}
	}
	return nil
}
