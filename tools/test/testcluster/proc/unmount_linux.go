package proc

import "syscall"

// detachUnmount unmounts path lazily: busy mounts go once unused.
func detachUnmount(path string) error {
	return syscall.Unmount(path, syscall.MNT_DETACH)
}
