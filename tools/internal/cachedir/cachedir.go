// Package cachedir keeps build results outside any checkout, one directory
// per component and version, so a later run or a fresh clone on the same
// machine reuses them. A directory is a hit only once it is complete: it is
// filled under a temporary name and renamed into place, so an interrupted
// build never looks like a hit.
package cachedir

import (
	"fmt"
	"os"
	"path/filepath"
)

const completeMarker = ".complete"

// Complete reports whether dir holds a finished build.
func Complete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, completeMarker))
	return err == nil
}

// Fill builds into a temporary sibling of dir with fn and moves it into
// place, replacing whatever was there. It does nothing when dir is complete.
func Fill(dir string, fn func(tmp string) error) error {
	if Complete(dir) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".partial-")
	if err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp makes it private; the cache is readable by everyone.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	if err := fn(tmp); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		return fmt.Errorf("mark cache entry: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("replace cache entry: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move cache entry into place: %w", err)
	}
	return nil
}
