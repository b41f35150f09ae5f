package activation

import (
	"net"
	"strings"
	"syscall"
	"testing"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestNoSocketPassed(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"no variables":          {},
		"meant for another pid": {"LISTEN_PID": "99", "LISTEN_FDS": "1"},
	} {
		ln, err := Listener(env(vars), 42)
		if ln != nil || err != nil {
			t.Errorf("%s: Listener = %v, %v; want nil, nil", name, ln, err)
		}
	}
}

func TestBadVariables(t *testing.T) {
	for name, tt := range map[string]struct {
		vars map[string]string
		want string
	}{
		"pid not a number": {map[string]string{"LISTEN_PID": "me", "LISTEN_FDS": "1"}, "LISTEN_PID"},
		"no fds":           {map[string]string{"LISTEN_PID": "42"}, "LISTEN_FDS"},
		"zero fds":         {map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "0"}, "LISTEN_FDS"},
	} {
		_, err := Listener(env(tt.vars), 42)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, tt.want)
		}
	}
}

// TestUnusableDescriptors: each way fd 3 can be wrong gives one error
// saying which, where os.NewFile and net.FileListener alone would not.
func TestUnusableDescriptors(t *testing.T) {
	closedFD := func(t *testing.T) int {
		fds := make([]int, 2)
		if err := syscall.Pipe(fds); err != nil {
			t.Fatal(err)
		}
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return fds[0]
	}
	pipeFD := func(t *testing.T) int {
		fds := make([]int, 2)
		if err := syscall.Pipe(fds); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
		return fds[0]
	}
	boundFD := func(t *testing.T) int {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(fd) })
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	for name, tt := range map[string]struct {
		fd   func(*testing.T) int
		want string
	}{
		"closed":               {closedFD, "is not open"},
		"not a socket":         {pipeFD, "is not a socket"},
		"bound, not listening": {boundFD, "is a socket that is not listening"},
	} {
		t.Run(name, func(t *testing.T) {
			fd := tt.fd(t)
			ln, err := listenerFromFD(fd)
			if err == nil {
				ln.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "LISTEN_FDS") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %q, want one line naming LISTEN_FDS and saying %q", err, tt.want)
			}
		})
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := listenerFromFD(int(f.Fd()))
	if err != nil {
		t.Fatalf("a listening socket: %v", err)
	}
	got.Close()
}
