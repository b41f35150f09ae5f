package devloop

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// BindMount makes dir visible at target until the returned function is
// called, which unmounts it and removes the directories that BindMount
// created for target (an empty /data/my-project is not left behind).
// target must be empty: a leftover bind mount of an earlier run is
// replaced. It needs root; unmount errors are written to log.
func BindMount(dir, target string, log io.Writer) (func(), error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("bind-mounting the source at %s needs root: run as root", target)
	}
	created, err := mkdirAll(target)
	if err != nil {
		return nil, err
	}
	removeCreated := func() {
		for i := len(created) - 1; i >= 0; i-- {
			if err := os.Remove(created[i]); err != nil {
				fmt.Fprintf(log, "devloop: remove %s, created for the mount: %v\n", created[i], err)
			}
		}
	}
	// A mount left by a run that was killed: take it away first.
	for syscall.Unmount(target, 0) == nil {
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		removeCreated()
		return nil, fmt.Errorf("check that %s is empty before mounting the source there: %w", target, err)
	}
	if len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty: move its contents away, the dev loop mounts your source there", target)
	}
	if err := syscall.Mount(dir, target, "", syscall.MS_BIND, ""); err != nil {
		removeCreated()
		return nil, fmt.Errorf("bind-mount %s at %s: %w", dir, target, err)
	}
	return func() {
		// Lazily: a pod that still runs keeps its own view.
		if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
			fmt.Fprintf(log, "devloop: unmount %s: %v\n", target, err)
			return
		}
		removeCreated()
	}, nil
}

// mkdirAll is os.MkdirAll that returns the directories it created, the
// outermost first.
func mkdirAll(path string) ([]string, error) {
	var missing []string
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		_, err := os.Stat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		missing = append([]string{p}, missing...)
		if p == filepath.Dir(p) {
			break
		}
	}
	for i, p := range missing {
		if err := os.Mkdir(p, 0o755); err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = os.Remove(missing[j])
			}
			return nil, fmt.Errorf("create %s: %w", p, err)
		}
	}
	return missing, nil
}
