//go:build unix && !linux

package reload

import (
	"errors"
	"os"
	"syscall"
)

func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

var errNoReadiness = errors.New("readiness detection needs Linux /proc")

// accepting cannot be known here; the reloader falls back to its ready timeout.
func accepting(int, uint64) (bool, error) { return false, errNoReadiness }

func inodeOf(*os.File) (uint64, error) { return 0, nil }
