package devloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"scalable-app/tools/internal/baseimage"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
	"scalable-app/tools/internal/kubectl"
)

// testCluster is the project's own test cluster, driven through its CLI
// (tools/cmd/testcluster), so that this developer tool does not depend on
// the test infrastructure's packages. Its single node is this machine: the
// source is bind-mounted at /data/my-project and the image is loaded from
// the local Docker engine.
type testCluster struct {
	run *command.Runner
	out io.Writer
	bin string // the testcluster program
	k   kubectl.Kubectl
}

func (t *testCluster) name() string { return "the project's test cluster (make cluster-up)" }

func (t *testCluster) check(ctx context.Context) error {
	if runtime.GOOS != "linux" {
		return errors.New("the test-cluster backend needs Linux (its node is this machine): use --backend=minikube")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := t.run.Output(cctx, "check the test cluster", t.bin, "status")
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("the test cluster's CLI %s is missing: `make dev` builds it into bin/tools, or pass --testcluster PATH", t.bin)
	}
	if err != nil {
		return fmt.Errorf("the test cluster is not up: start it with `make cluster-up` (root)\n    %s",
			strings.ReplaceAll(command.LastLines(string(out)+"\n"+err.Error(), 4), "\n", "\n    "))
	}
	kubeconfig, err := t.run.Output(ctx, "find the test cluster's kubeconfig", t.bin, "kubeconfig")
	if err != nil {
		return err
	}
	env, err := t.run.Output(ctx, "read the test cluster's environment", t.bin, "env")
	if err != nil {
		return err
	}
	binDir, err := firstPathEntry(string(env))
	if err != nil {
		return fmt.Errorf("find the test cluster's kubectl in `%s env`: %w", t.bin, err)
	}
	t.k = kubectl.Kubectl{Bin: filepath.Join(binDir, "kubectl"), Kubeconfig: strings.TrimSpace(string(kubeconfig))}
	return nil
}

// firstPathEntry is the directory that `testcluster env` puts first in PATH
// (export PATH=DIR:$PATH): where the cluster's own kubectl is.
func firstPathEntry(env string) (string, error) {
	for _, line := range strings.Split(env, "\n") {
		value, ok := strings.CutPrefix(strings.TrimSpace(line), "export PATH=")
		if !ok {
			continue
		}
		if unq, err := strconv.Unquote(value); err == nil {
			value = unq
		}
		dir, _, _ := strings.Cut(value, ":")
		dir = strings.Trim(dir, "'")
		if dir == "" || dir == "$PATH" {
			break
		}
		return dir, nil
	}
	return "", errors.New("no PATH export with the cluster's bin directory")
}

func (t *testCluster) kubectl() kubectl.Kubectl { return t.k }

func (t *testCluster) loadImage(ctx context.Context, dir, image string) error {
	if _, err := dockerengine.Ensure(ctx, t.run, dockerengine.Options{Log: t.out, KeepRunning: true}); err != nil {
		return err
	}
	if _, err := baseimage.Ensure(ctx, baseimage.Options{
		Dockerfile: filepath.Join(dir, "Dockerfile"), CacheDir: baseimage.DefaultCacheDir,
		Mirror: "http://deb.debian.org/debian", Docker: "docker", GOROOT: runtime.GOROOT(), Log: t.out,
	}); err != nil {
		return err
	}
	if err := buildImage(ctx, t.run, t.out, dir, image); err != nil {
		return err
	}
	fmt.Fprintf(t.out, "devloop: loading %s into the test cluster\n", image)
	_, err := t.run.Exec(ctx, command.Cmd{What: "load " + image + " into the test cluster", Name: t.bin,
		Args: []string{"load", image}, Stdout: t.out, Stderr: t.out})
	return err
}

// mount bind-mounts dir at /data/my-project: the node is this machine, so
// the pod sees the working copy itself, and inotify works through it.
func (t *testCluster) mount(_ context.Context, dir string) (func(), error) {
	return BindMount(dir, MountPath, t.out)
}
