//go:build !linux

package devloop

import (
	"errors"
	"io"
)

// BindMount needs Linux: the test cluster's node is this machine, and the
// source reaches it through a Linux bind mount.
func BindMount(dir, target string, log io.Writer) (func(), error) {
	return nil, errors.New("the test-cluster backend needs Linux: use --backend=minikube")
}
