// Package aptget installs Debian packages for the project's tools and tests.
//
// On a new machine apt's package lists may be missing or stale, so an
// install that fails is retried once after `apt-get update`. Another apt run
// holding the dpkg lock is waited for rather than failed on.
package aptget

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Install installs the packages that are not installed yet, writing one
// progress line to log when it installs anything.
func Install(ctx context.Context, log io.Writer, packages ...string) error {
	var missing []string
	for _, p := range packages {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
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
	install := append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)
	if _, err := apt(ctx, install...); err == nil {
		return nil
	}
	fmt.Fprintln(log, "apt-get install failed; refreshing the package lists (apt-get update) and trying again")
	if out, err := apt(ctx, "update", "-q"); err != nil {
		return fmt.Errorf("apt-get update: %w: %s", err, tail(out))
	}
	if out, err := apt(ctx, install...); err != nil {
		return fmt.Errorf("apt-get install %s: %w: %s", strings.Join(missing, " "), err, tail(out))
	}
	return nil
}

func apt(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

func tail(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
