//go:build !linux

package devloop

import (
	"context"
	"errors"
)

// errNeedsLinux: the test cluster's node is this machine, run by Linux
// daemons, and the source reaches it through a Linux bind mount.
var errNeedsLinux = errors.New("the test-cluster backend needs Linux: use --backend=minikube")

type testCluster struct{ r *runner }

func (t *testCluster) name() string                                    { return "the project's test cluster (make cluster-up)" }
func (t *testCluster) check(context.Context) error                     { return errNeedsLinux }
func (t *testCluster) kubectl() []string                               { return nil }
func (t *testCluster) env() []string                                   { return nil }
func (t *testCluster) loadImage(context.Context, string, string) error { return errNeedsLinux }
func (t *testCluster) mount(context.Context, string) (func(), error)   { return nil, errNeedsLinux }

// BindMount needs Linux.
func BindMount(dir, target string) (func(), error) { return nil, errNeedsLinux }
