package devloop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"scalable-app/internal/baseimage"
	"scalable-app/internal/dockerengine"
	"scalable-app/internal/testcluster"
)

// testCluster is the project's own test cluster, whose single node is this
// machine: the source is bind-mounted at /data/my-project and the image is
// loaded from the local Docker engine.
type testCluster struct{ r *runner }

func (t *testCluster) name() string { return "the project's test cluster (make cluster-up)" }

func (t *testCluster) check(ctx context.Context) error {
	if _, err := os.Stat(testcluster.Kubeconfig()); err != nil {
		return errors.New("the test cluster is not set up: start it with `make cluster-up` (root)")
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := testcluster.Ready(cctx); err != nil {
		return fmt.Errorf("the test cluster is not ready (%v): start it with `make cluster-up` (root)", err)
	}
	return nil
}

func (t *testCluster) kubectl() []string { return []string{testcluster.Kubectl()} }

func (t *testCluster) env() []string { return []string{"KUBECONFIG=" + testcluster.Kubeconfig()} }

func (t *testCluster) loadImage(ctx context.Context, dir, image string) error {
	if _, err := dockerengine.Ensure(ctx, dockerengine.Options{Log: t.r.out, KeepRunning: true}); err != nil {
		return err
	}
	if _, err := baseimage.Ensure(ctx, baseimage.Options{
		Dockerfile: dir + "/Dockerfile", CacheDir: baseimage.DefaultCacheDir,
		Mirror: "http://deb.debian.org/debian", Docker: "docker", GOROOT: runtime.GOROOT(), Log: t.r.out,
	}); err != nil {
		return err
	}
	if err := buildImage(ctx, t.r, dir, image); err != nil {
		return err
	}
	t.r.progress("loading %s into the test cluster", image)
	if err := testcluster.LoadImage(ctx, image); err != nil {
		return fmt.Errorf("load %s into the test cluster: %w", image, err)
	}
	return nil
}

// mount bind-mounts dir at /data/my-project: the node is this machine, so
// the pod sees the working copy itself, and inotify works through it.
func (t *testCluster) mount(ctx context.Context, dir string) (func(), error) {
	return BindMount(dir, MountPath)
}

// BindMount makes dir visible at target until the returned function is
// called. target is created if missing and must be empty: a leftover bind
// mount of an earlier run is replaced.
func BindMount(dir, target string) (func(), error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("bind-mounting the source at %s %w: run as root", target, errNotRoot)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", target, err)
	}
	// A mount left by a run that was killed: take it away first.
	for syscall.Unmount(target, 0) == nil {
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		return nil, fmt.Errorf("check that %s is empty before mounting the source there: %w", target, err)
	}
	if len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty: move its contents away, the dev loop mounts your source there", target)
	}
	if err := syscall.Mount(dir, target, "", syscall.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind-mount %s at %s: %w", dir, target, err)
	}
	return func() {
		// Lazily: a pod that still runs keeps its own view.
		if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "devloop: unmount %s: %v\n", target, err)
		}
	}, nil
}

var errNotRoot = errors.New("needs root")
