package devloop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"scalable-app/internal/baseimage"
	"scalable-app/internal/dockerengine"
	"scalable-app/internal/testcluster"
)

// minikube is the seed's cluster: `minikube mount` for the source,
// `minikube image load` for the image.
type minikube struct{ r *runner }

func (m *minikube) name() string { return "minikube (context minikube)" }

func (m *minikube) check(ctx context.Context) error {
	if _, err := exec.LookPath("minikube"); err != nil {
		return errors.New("minikube is not installed (https://minikube.sigs.k8s.io/docs/start/)")
	}
	out, err := m.r.output(ctx, "minikube status", "minikube", "status", "--format={{.Host}}/{{.Kubelet}}/{{.APIServer}}")
	if strings.TrimSpace(out) != "Running/Running/Running" {
		if err == nil {
			err = fmt.Errorf("status %s", strings.TrimSpace(out))
		}
		return fmt.Errorf("minikube is not running (%v): start it with `minikube start --driver=docker`", err)
	}
	return nil
}

func (m *minikube) kubectl() []string {
	if _, err := exec.LookPath("kubectl"); err == nil {
		return []string{"kubectl", "--context=minikube"}
	}
	return []string{"minikube", "kubectl", "--"}
}

func (m *minikube) env() []string { return nil }

func (m *minikube) loadImage(ctx context.Context, dir, image string) error {
	if _, err := exec.LookPath("docker"); err != nil {
		return errors.New("docker is not installed: it builds the dev image (docker build --target dev)")
	}
	if err := m.r.stream(ctx, "build the dev image", "docker", "build", "--target", "dev", "-t", image, dir); err != nil {
		return err
	}
	return m.r.stream(ctx, "load the image into minikube", "minikube", "image", "load", image)
}

// mount runs `minikube mount DIR:/data/my-project` for as long as the dev
// loop runs, and waits until the node sees the files. It is a 9p mount:
// edits raise no inotify events in the pod, so the reloader polls.
func (m *minikube) mount(ctx context.Context, dir string) (func(), error) {
	mctx, cancel := context.WithCancel(ctx)
	mounter := &process{
		name:   "minikube mount",
		r:      m.r,
		argv:   []string{"minikube", "mount", dir + ":" + MountPath},
		prefix: "[mount] ",
	}
	mounter.start(mctx)
	stop := func() { cancel(); mounter.wait() }
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := m.r.output(ctx, "check the mount", "minikube", "ssh", "--", "test", "-f", MountPath+"/go.mod"); err == nil {
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("minikube mount: %s/go.mod not visible in the node after 2 minutes", MountPath)
		}
		select {
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

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
	if err := t.r.stream(ctx, "build the dev image", "docker", "build", "--target", "dev", "-t", image, dir); err != nil {
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
	if entries, err := os.ReadDir(target); err != nil || len(entries) > 0 {
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
