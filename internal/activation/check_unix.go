//go:build unix

package activation

import (
	"errors"
	"syscall"
)

// checkListening returns an error completing "fd N ..." unless fd is a
// socket in the listening state.
func checkListening(fd int) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		if errors.Is(err, syscall.EBADF) {
			return errors.New("is not open")
		}
		return errors.New("cannot be inspected: " + err.Error())
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return errors.New("is not a socket")
	}
	listening, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	if err != nil {
		return errors.New("is a socket whose state cannot be read: " + err.Error())
	}
	if listening == 0 {
		return errors.New("is a socket that is not listening (bound, or connected, but listen was never called)")
	}
	return nil
}
