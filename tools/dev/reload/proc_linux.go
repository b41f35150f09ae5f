package reload

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// dieWithParent has the kernel send this thread SIGTERM when its parent
// exits; execve keeps the setting.
func dieWithParent() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return errno
	}
	return nil
}

// accepting reports whether process pid waits for connections on the socket
// with inode ino: whether one of its epoll instances watches that socket
// (/proc/PID/fdinfo lists each watched descriptor with the inode of its
// file). A Go server, like most servers, registers its listener with epoll
// right before its accept loop. Until then the old app keeps accepting, and
// connections that neither has accepted wait in the socket's backlog.
func accepting(pid int, ino uint64) (bool, error) {
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		target, err := os.Readlink(fdDir + "/" + e.Name())
		if err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		if epollWatches(info, ino) {
			return true, nil
		}
	}
	return false, nil
}

// epollWatches parses an epoll fdinfo: lines such as
// "tfd:        7 events:    2019 data: 7f0000000007  pos:0 ino:1b3e sdev:8".
func epollWatches(fdinfo []byte, ino uint64) bool {
	want := []byte("ino:" + strconv.FormatUint(ino, 16))
	sc := bufio.NewScanner(bytes.NewReader(fdinfo))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("tfd:")) {
			continue
		}
		for _, field := range bytes.Fields(line) {
			if bytes.Equal(field, want) {
				return true
			}
		}
	}
	return false
}

// inodeOf is the inode number of an open file (for a socket, the number in
// "socket:[N]").
func inodeOf(f *os.File) (uint64, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("no inode for %s", f.Name())
	}
	return st.Ino, nil
}
