package devloop

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"scalable-app/internal/dockerengine"
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
	if err := buildImage(ctx, m.r, dir, image); err != nil {
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

// buildImage builds the dev image with a client that uses BuildKit: the
// Dockerfile's cache mounts (RUN --mount) fail with the legacy builder that
// a plain `docker build` of Debian's docker.io 20.10 uses.
func buildImage(ctx context.Context, r *runner, dir, image string) error {
	b, err := dockerengine.FindBuilder(ctx)
	if err != nil {
		return fmt.Errorf("build the dev image: %w", err)
	}
	return r.streamEnv(ctx, b.Env, "build the dev image", b.Command, "build", "--target", "dev", "-t", image, dir)
}
