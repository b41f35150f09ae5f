// Package activation receives listening sockets passed by a supervisor using
// the systemd socket-activation protocol (LISTEN_PID, LISTEN_FDS, fd 3).
//
// A supervisor that keeps the socket open across restarts (systemd, or the
// project's hot reloader) lets clients queue in the kernel backlog while the
// process is replaced, instead of being refused.
package activation

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// firstFD is the first passed descriptor, after stdin, stdout and stderr.
const firstFD = 3

// Listener returns the first socket passed by the supervisor, or nil when the
// environment does not pass one to this process. pid is the caller's process
// ID: LISTEN_PID guards against a child inheriting variables meant for its
// parent.
func Listener(getenv func(string) string, pid int) (net.Listener, error) {
	pidVar := getenv("LISTEN_PID")
	if pidVar == "" {
		return nil, nil
	}
	wantPID, err := strconv.Atoi(pidVar)
	if err != nil {
		return nil, fmt.Errorf("socket activation: LISTEN_PID %q is not a number", pidVar)
	}
	if wantPID != pid {
		return nil, nil
	}
	fds, err := strconv.Atoi(getenv("LISTEN_FDS"))
	if err != nil || fds < 1 {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS %q must be a positive number", getenv("LISTEN_FDS"))
	}
	return listenerFromFD(firstFD)
}

// listenerFromFD takes over fd, which must be a listening stream socket.
// os.NewFile and net.FileListener do not check that much: the first returns
// a File for any number, the second accepts a socket that is bound but not
// listening, whose every Accept then fails.
func listenerFromFD(fd int) (net.Listener, error) {
	if err := checkListening(fd); err != nil {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS is set, but fd %d %w", fd, err)
	}
	f := os.NewFile(uintptr(fd), "activation-socket")
	// FileListener duplicates the descriptor, so the original can be closed.
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS is set, but fd %d is not a listening socket: %w", fd, err)
	}
	return ln, nil
}
