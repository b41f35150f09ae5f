// Package aptget is the one way the tools install Debian packages, through
// the command runner.
//
// One strategy everywhere: apt-get waits up to LockTimeout for a dpkg lock
// another apt run holds (DPkg::Lock::Timeout) instead of failing at once;
// on a new machine apt's package lists may be missing or stale, so an
// install that fails is retried once after `apt-get update`; and apt never
// asks a question (DEBIAN_FRONTEND=noninteractive).
package aptget

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"scalable-app/tools/internal/command"
)

// LockTimeout is how long apt-get waits for another apt run's dpkg lock.
const LockTimeout = 10 * time.Minute

// Install installs the packages that are not installed yet, without their
// recommended packages, writing one progress line to log when it installs
// anything.
func Install(ctx context.Context, run *command.Runner, log io.Writer, packages ...string) error {
	return install(ctx, run, log, false, packages)
}

// InstallRecommended is Install with the packages' recommended packages
// (Chromium's fonts, without which a screenshot shows no text).
func InstallRecommended(ctx context.Context, run *command.Runner, log io.Writer, packages ...string) error {
	return install(ctx, run, log, true, packages)
}

func install(ctx context.Context, run *command.Runner, log io.Writer, recommends bool, packages []string) error {
	var missing []string
	for _, p := range packages {
		out, err := run.Output(ctx, "check whether Debian package "+p+" is installed", "dpkg-query", "-W", "-f=${Status}", p)
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("Debian packages %s are missing and installing them needs root: apt-get install -y %s",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	fmt.Fprintf(log, "installing Debian packages: %s (apt-get)\n", strings.Join(missing, " "))
	install := []string{"install", "-y", "-q"}
	if !recommends {
		install = append(install, "--no-install-recommends")
	}
	install = append(install, missing...)
	what := "install Debian packages " + strings.Join(missing, " ")
	if err := apt(ctx, run, what, install...); err == nil {
		return nil
	}
	fmt.Fprintln(log, "apt-get install failed; refreshing the package lists (apt-get update) and trying again")
	if err := apt(ctx, run, "refresh Debian package lists", "update", "-q"); err != nil {
		return err
	}
	return apt(ctx, run, what, install...)
}

func apt(ctx context.Context, run *command.Runner, what string, args ...string) error {
	lock := "DPkg::Lock::Timeout=" + strconv.Itoa(int(LockTimeout.Seconds()))
	_, err := run.Exec(ctx, command.Cmd{What: what, Name: "apt-get", Args: append([]string{"-o", lock}, args...),
		Env: []string{"DEBIAN_FRONTEND=noninteractive"}})
	return err
}

// Candidate returns the version apt would install of package p, refreshing
// the package lists once when they know none (a new machine).
func Candidate(ctx context.Context, run *command.Runner, p string) (string, error) {
	v, err := candidate(ctx, run, p)
	if err == nil && v != "" {
		return v, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("apt knows no version of Debian package %s: run apt-get update as root", p)
	}
	if err := apt(ctx, run, "refresh Debian package lists", "update", "-q"); err != nil {
		return "", err
	}
	v, err = candidate(ctx, run, p)
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", fmt.Errorf("no Debian package %s in apt's sources", p)
	}
	return v, nil
}

func candidate(ctx context.Context, run *command.Runner, p string) (string, error) {
	out, err := run.Output(ctx, "ask apt which version of "+p+" it would install", "apt-cache", "policy", p)
	if err != nil {
		return "", err
	}
	return parseCandidate(string(out)), nil
}

// parseCandidate reads the Candidate line of `apt-cache policy`; "" when
// there is none.
func parseCandidate(policy string) string {
	for _, l := range strings.Split(policy, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Candidate:"); ok {
			v = strings.TrimSpace(v)
			if v == "(none)" {
				return ""
			}
			return v
		}
	}
	return ""
}

// Download fetches the .deb of package p at version into dir, without
// installing it, and returns its path.
func Download(ctx context.Context, run *command.Runner, dir, p, version string) (string, error) {
	_, err := run.Exec(ctx, command.Cmd{
		What: "download Debian package " + p + " " + version, Name: "apt-get",
		Args: []string{"download", "-q", p + "=" + version}, Dir: dir,
	})
	if err != nil {
		return "", err
	}
	matches, err := filepath.Glob(filepath.Join(dir, p+"_*.deb"))
	if err != nil || len(matches) != 1 {
		return "", fmt.Errorf("download Debian package %s: want one %s_*.deb in %s, found %d", p, p, dir, len(matches))
	}
	return matches[0], nil
}

// Extract downloads package p at version into dir and unpacks its files
// into dir/root, without installing it; it returns the root.
func Extract(ctx context.Context, run *command.Runner, dir, p, version string) (string, error) {
	deb, err := Download(ctx, run, dir, p, version)
	if err != nil {
		return "", err
	}
	root := filepath.Join(dir, "root")
	if err := run.Run(ctx, "unpack "+filepath.Base(deb), "dpkg-deb", "-x", deb, root); err != nil {
		return "", err
	}
	if err := os.Remove(deb); err != nil {
		return "", fmt.Errorf("remove %s: %w", deb, err)
	}
	return root, nil
}

// BusyboxPath is where Debian's busybox-static keeps its binary inside root:
// /bin in bookworm, /usr/bin in later (merged-/usr) releases.
func BusyboxPath(root string) string {
	bin := filepath.Join(root, "bin", "busybox")
	if _, err := os.Stat(bin); err != nil {
		return filepath.Join(root, "usr", "bin", "busybox")
	}
	return bin
}
