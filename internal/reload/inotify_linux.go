package reload

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// inotify turns kernel file events into wake-ups. It carries no file names:
// the watcher rescans on a wake-up, so the change list, excludes and
// debouncing are the same as for polling. Where a mount never raises events
// (minikube's 9p mount) polling still sees the change.
type inotify struct {
	f      *os.File
	events chan struct{}

	mu      sync.Mutex
	watched map[string]int // directory -> watch descriptor
}

const inotifyMask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MODIFY | syscall.IN_CLOSE_WRITE |
	syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO | syscall.IN_ATTRIB | syscall.IN_DELETE_SELF |
	syscall.IN_ONLYDIR

func newInotify() (*inotify, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	// A non-blocking descriptor goes to the runtime poller, so Read parks
	// the goroutine and Close wakes it.
	in := &inotify{f: os.NewFile(uintptr(fd), "inotify"), events: make(chan struct{}, 1), watched: map[string]int{}}
	go in.read()
	return in, nil
}

func (in *inotify) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := in.f.Read(buf)
		if err != nil {
			return
		}
		in.forgetRemoved(buf[:n])
		select {
		case in.events <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// sync adds a watch for each directory not watched yet, and reports whether
// it added any. Watches of removed directories vanish with them; a
// re-created directory is added again.
func (in *inotify) sync(dirs []string) (added bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	present := make(map[string]bool, len(dirs))
	for _, d := range dirs {
		present[d] = true
		if _, ok := in.watched[d]; ok {
			continue
		}
		var wd int
		var err error
		rc, rcErr := in.f.SyscallConn()
		if rcErr != nil {
			return added
		}
		ctlErr := rc.Control(func(fd uintptr) {
			wd, err = syscall.InotifyAddWatch(int(fd), d, inotifyMask)
		})
		if ctlErr == nil && err == nil {
			in.watched[d] = wd
			added = true
		}
	}
	for d := range in.watched {
		if !present[d] {
			delete(in.watched, d)
		}
	}
	return added
}

// forgetRemoved drops the watches the kernel removed (IN_IGNORED: the
// directory was deleted), so a directory re-created under the same name is
// watched again by the next sync.
func (in *inotify) forgetRemoved(buf []byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for len(buf) >= syscall.SizeofInotifyEvent {
		ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[0]))
		if ev.Mask&syscall.IN_IGNORED != 0 {
			for d, wd := range in.watched {
				if wd == int(ev.Wd) {
					delete(in.watched, d)
				}
			}
		}
		buf = buf[min(len(buf), syscall.SizeofInotifyEvent+int(ev.Len)):]
	}
}

func (in *inotify) close() { in.f.Close() }
