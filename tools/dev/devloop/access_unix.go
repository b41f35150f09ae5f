//go:build unix

package devloop

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
)

// checkReadable fails, with the fix, when the pod's user (uid, gid) cannot
// read the source tree: the reloader must list every directory it scans
// and the build must read the Go files. Otherwise the pod only crash-loops
// with `hotreload: scan /app: open /app: permission denied`.
func checkReadable(dir string, uid, gid uint32) error {
	var denied []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrPermission) && path != dir {
			// Unreadable to the dev loop itself (another user's directory
			// inside the tree): its mode was checked when it was visited.
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() && path != dir && vcsDir(d.Name()) {
			return filepath.SkipDir // the reloader never scans them
		}
		need := fs.FileMode(0)
		switch {
		case d.IsDir():
			need = 0o5 // list and enter
		case d.Type().IsRegular() && (strings.HasSuffix(d.Name(), ".go") || d.Name() == "go.mod" || d.Name() == "go.sum"):
			need = 0o4
		default:
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || allowed(info.Mode().Perm(), st.Uid, st.Gid, uid, gid, need) {
			return nil
		}
		denied = append(denied, fmt.Sprintf("%s (%s, owner uid %d)", path, info.Mode(), st.Uid))
		if len(denied) == 5 {
			return fs.SkipAll
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check that the dev pod's user can read %s: %w", dir, err)
	}
	if len(denied) > 0 {
		return fmt.Errorf("the dev pod runs as uid %d, which cannot read the source it mounts:\n  %s\n"+
			"it would fail with `hotreload: scan /app: permission denied`: make the tree readable, e.g. chmod o+rx %s (the directory) or chmod -R a+rX %s (all of it)",
			uid, strings.Join(denied, "\n  "), dir, dir)
	}
	return nil
}

// allowed applies the permission bits of the class (owner, group, others)
// that uid and gid fall in, as the kernel does (no ACLs).
func allowed(perm fs.FileMode, ownerUID, ownerGID, uid, gid uint32, need fs.FileMode) bool {
	switch {
	case ownerUID == uid:
		perm >>= 6
	case ownerGID == gid:
		perm >>= 3
	}
	return perm&need == need
}

func vcsDir(name string) bool {
	switch name {
	case ".git", ".hg", ".svn", ".jj":
		return true
	}
	return false
}
