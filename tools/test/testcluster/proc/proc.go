// Package proc tracks the daemons the harness starts (by PID file) and
// removes what they leave behind: container processes in the kubelet's
// cgroups, containerd shims, and mounts under the state directory.
package proc

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PIDFile records one daemon's process ID.
type PIDFile struct {
	Path string
	Exe  string // base name the process's argv[0] must have, against PID reuse
}

// Write records pid.
func (p PIDFile) Write(pid int) error {
	if err := os.WriteFile(p.Path, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("record pid of %s: %w", p.Exe, err)
	}
	return nil
}

// Alive returns the recorded PID when that process still runs the expected
// program, else 0.
func (p PIDFile) Alive() int {
	b, err := os.ReadFile(p.Path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if !Running(pid) || filepath.Base(argv0(pid)) != p.Exe {
		return 0
	}
	return pid
}

// Terminate sends SIGTERM, waits up to grace, then SIGKILL.
func Terminate(pid int, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !Running(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50 && Running(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// Running reports whether pid exists and is not a zombie.
func Running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}

func argv0(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	first, _, _ := bytes.Cut(b, []byte{0})
	return string(first)
}

// WithArg lists the processes whose command line has arg as one argument,
// e.g. the containerd shims started with "-address <our socket>".
func WithArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// ShimSockets are the socket files containerd's runc v2 shims create in
// dir (/run/containerd/s) for tasks of the containerd at address; a killed
// shim leaves its socket behind. taskDir is <state>/io.containerd.runtime.v2.task.
func ShimSockets(dir, address, taskDir string) []string {
	var socks []string
	nss, _ := os.ReadDir(taskDir)
	for _, ns := range nss {
		ids, _ := os.ReadDir(filepath.Join(taskDir, ns.Name()))
		for _, id := range ids {
			sum := sha256.Sum256([]byte(filepath.Join(address, ns.Name(), id.Name())))
			socks = append(socks, filepath.Join(dir, fmt.Sprintf("%x", sum)))
		}
	}
	return socks
}

// cgroupHierarchies lists the cgroup mount points (v1 controllers and the
// unified v2 one when mounted).
func cgroupHierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") {
				dirs = append(dirs, unescape(fields[4]))
			}
		}
	}
	return dirs, sc.Err()
}

// EnsureCgroupRoot creates name in every cgroup hierarchy where it is
// missing (the kubelet requires its cgroup root to exist).
func EnsureCgroupRoot(name string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		d := filepath.Join(h, name)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
		// A new cpuset cgroup has no CPUs until given its parent's.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if cur, err := os.ReadFile(filepath.Join(d, f)); err == nil && len(bytes.TrimSpace(cur)) == 0 {
				if v, err := os.ReadFile(filepath.Join(h, f)); err == nil {
					_ = os.WriteFile(filepath.Join(d, f), v, 0o644)
				}
			}
		}
	}
	return nil
}

// KillCgroupTree SIGKILLs every process in the cgroup subtree name of every
// hierarchy, then removes the cgroups, deepest first. It returns how many
// processes it killed.
func KillCgroupTree(name string) (int, error) {
	hs, err := cgroupHierarchies()
	if err != nil {
		return 0, err
	}
	killed := map[int]bool{}
	var dirs []string
	for _, h := range hs {
		root := filepath.Join(h, name)
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	// Processes may fork while being killed: repeat until every cgroup is empty.
	for round := 0; round < 50; round++ {
		found := false
		for _, d := range dirs {
			for _, pid := range procsOf(d) {
				found = true
				if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
					killed[pid] = true
				}
			}
		}
		if !found {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		var rmErr error
		for try := 0; try < 20; try++ {
			rmErr = syscall.Rmdir(d)
			if rmErr == nil || errors.Is(rmErr, syscall.ENOENT) {
				rmErr = nil
				break
			}
			time.Sleep(100 * time.Millisecond) // a killed process may still be exiting
		}
		if rmErr != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, rmErr))
		}
	}
	return len(killed), errors.Join(errs...)
}

func procsOf(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// CgroupTreeExists reports whether name exists in any hierarchy.
func CgroupTreeExists(name string) bool {
	hs, _ := cgroupHierarchies()
	for _, h := range hs {
		if _, err := os.Stat(filepath.Join(h, name)); err == nil {
			return true
		}
	}
	return false
}

// MountsUnder lists mount points at or below dir, deepest first.
func MountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var ms []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			ms = append(ms, mp)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	return ms, sc.Err()
}

// UnmountUnder lazily unmounts everything at or below dir.
func UnmountUnder(dir string) (int, error) {
	n := 0
	var errs []error
	// Mounts can be stacked: repeat until none is left.
	for round := 0; round < 10; round++ {
		ms, err := MountsUnder(dir)
		if err != nil {
			return n, err
		}
		if len(ms) == 0 {
			return n, errors.Join(errs...)
		}
		errs = nil
		for _, m := range ms {
			if err := detachUnmount(m); err != nil && !errors.Is(err, syscall.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// unescape decodes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
