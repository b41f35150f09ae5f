//go:build unix && !linux

package reload

import (
	"errors"
	"os"
)

// dieWithParent has nothing to set here: an app outlives a reloader killed
// outright.
func dieWithParent() error { return nil }

var errNoReadiness = errors.New("readiness detection needs Linux /proc")

// accepting cannot be known here; the reloader falls back to its ready timeout.
func accepting(int, uint64) (bool, error) { return false, errNoReadiness }

func inodeOf(*os.File) (uint64, error) { return 0, nil }
