// Package standin holds what every stand-in image shares: an official image
// is used when it is present or can be pulled, and only where neither works
// (a machine with no registry) is a stand-in built under its name, which
// needs Linux and root.
package standin

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"scalable-app/tools/internal/command"
)

// Host is what decides whether a stand-in can be built here.
type Host struct {
	GOOS string
	EUID int
}

// ThisHost describes the running process, for mains to pass in options.
func ThisHost() Host { return Host{GOOS: runtime.GOOS, EUID: os.Geteuid()} }

// CanBuild says why a stand-in for ref, which could not be pulled, cannot
// be built here, or nil.
func (h Host) CanBuild(ref, target string) error {
	if h.GOOS == "linux" && h.EUID == 0 {
		return nil
	}
	return fmt.Errorf("cannot pull %s and cannot build a stand-in here: it needs Linux and root (this is %s, uid %d); pull it where a registry answers, or run `make %s` as root on Linux",
		ref, h.GOOS, h.EUID, target)
}

// DefaultPullTimeout bounds a pull: where no registry answers it fails in
// well under a second; a real pull of a large image takes a minute or two.
const DefaultPullTimeout = 3 * time.Minute

// Source is where an official image may come from.
type Source struct {
	Run         *command.Runner
	Docker      string        // docker client command
	PullTimeout time.Duration // DefaultPullTimeout when 0
}

// Local makes ref local if Docker can: it reports "present" or "pulled",
// or the pull's error when the image is neither.
func (s Source) Local(ctx context.Context, ref string) (string, error) {
	if _, err := s.Run.Output(ctx, "look up image "+ref, s.Docker, "image", "inspect", "--format", "{{.Id}}", ref); err == nil {
		return "present", nil
	}
	timeout := s.PullTimeout
	if timeout <= 0 {
		timeout = DefaultPullTimeout
	}
	pullCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.Run.Run(pullCtx, "pull image "+ref, s.Docker, "pull", ref); err != nil {
		return "", err
	}
	return "pulled", nil
}

// FirstLine shortens a command's error for a progress line.
func FirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
