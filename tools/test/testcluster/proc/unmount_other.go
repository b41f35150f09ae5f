//go:build !linux

package proc

import "errors"

// detachUnmount exists so the module builds everywhere; the test cluster
// itself runs only on Linux.
func detachUnmount(path string) error {
	return errors.New("unmount " + path + ": the test cluster needs Linux")
}
