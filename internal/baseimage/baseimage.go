// Package baseimage provides the Dockerfile's build-stage base image on a
// machine that cannot pull images: when the official golang image the
// Dockerfile names is missing locally, it creates a stand-in with the same
// name from Debian's packages (debootstrap) and the local Go toolchain.
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
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"scalable-app/internal/aptget"
)

// Options configure Ensure.
type Options struct {
	Dockerfile string    // path of the Dockerfile whose build stage is read
	CacheDir   string    // where the root filesystem archive is kept between runs
	Mirror     string    // Debian mirror for debootstrap
	Docker     string    // docker client command
	GOROOT     string    // local Go installation copied into the image
	Log        io.Writer // progress lines
}

// DefaultCacheDir keeps the archive outside any checkout, so a fresh clone
// reuses it.
const DefaultCacheDir = "/var/cache/scalable-app/baseimage"

// packages are those of the official image's base (buildpack-deps:*-scm)
// that a Go build uses.
var packages = []string{"ca-certificates", "curl", "git", "gcc", "libc6-dev", "make", "pkg-config", "openssh-client"}

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

// Ensure makes the Dockerfile's build-stage base image available locally,
// creating the stand-in only when the image is missing. It returns the
// image reference.
func Ensure(ctx context.Context, o Options) (string, error) {
	start := time.Now()
	progress := func(format string, a ...any) {
		fmt.Fprintf(o.Log, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	ref, err := BuildBase(o.Dockerfile)
	if err != nil {
		return "", err
	}
	if err := runQuiet(ctx, o.Docker, "image", "inspect", ref); err == nil {
		progress("base image %s is present", ref)
		return ref, nil
	}
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
		progress("creating the root filesystem of %s (Debian %s via debootstrap, Go %s from %s); takes a few minutes once", ref, suite, goVersion, o.GOROOT)
		if err := buildRootfs(ctx, o, suite, archive, progress); err != nil {
			return "", err
		}
	} else {
		progress("reusing %s", archive)
	}

	progress("importing %s", ref)
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
	if err := run(ctx, o.Docker, args...); err != nil {
		return "", fmt.Errorf("import %s: %w", ref, err)
	}
	progress("base image %s ready", ref)
	return ref, nil
}

func buildRootfs(ctx context.Context, o Options, suite, archive string, progress func(string, ...any)) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		if err := aptget.Install(ctx, o.Log, "debootstrap"); err != nil {
			return fmt.Errorf("install debootstrap: %w", err)
		}
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

	progress("debootstrap %s from %s", suite, o.Mirror)
	if err := run(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(packages, ","),
		suite, rootfs, o.Mirror); err != nil {
		return fmt.Errorf("debootstrap %s: %w", suite, err)
	}
	// The package cache and lists are not part of the official image.
	for _, dir := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		if err := clearDir(filepath.Join(rootfs, dir)); err != nil {
			return err
		}
	}

	// Trust what this machine trusts: where a TLS-intercepting proxy stands
	// between it and the module proxy, its CA is in the host's bundle.
	if err := run(ctx, "cp", hostCABundle, filepath.Join(rootfs, hostCABundle)); err != nil {
		return fmt.Errorf("copy the host's CA certificates: %w", err)
	}

	progress("copying Go from %s", o.GOROOT)
	if err := run(ctx, "cp", "-a", o.GOROOT, filepath.Join(rootfs, "usr/local/go")); err != nil {
		return fmt.Errorf("copy Go toolchain: %w", err)
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

	progress("archiving the root filesystem")
	tmp := archive + ".partial"
	if err := run(ctx, "tar", "--numeric-owner", "-C", rootfs, "-cf", tmp, "."); err != nil {
		return fmt.Errorf("archive root filesystem: %w", err)
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

// run runs a command, returning its error with the tail of its output.
func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(out, 600))
	}
	return nil
}

func runQuiet(ctx context.Context, name string, args ...string) error {
	return exec.CommandContext(ctx, name, args...).Run()
}

func tail(out []byte, n int) string {
	s := strings.TrimSpace(string(out))
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
