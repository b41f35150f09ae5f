package devloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
	"scalable-app/tools/internal/kubectl"
)

// minikube is the seed's cluster: `minikube mount` for the source,
// `minikube image load` for the image.
type minikube struct {
	run   *command.Runner
	out   io.Writer
	state string // where the kubeconfig copy is written
	k     kubectl.Kubectl
}

func (m *minikube) name() string { return "minikube (context minikube)" }

func (m *minikube) check(ctx context.Context) error {
	out, err := m.run.Output(ctx, "check minikube", "minikube", "status", "--format={{.Host}}/{{.Kubelet}}/{{.APIServer}}")
	if errors.Is(err, exec.ErrNotFound) {
		return errors.New("minikube is not installed (https://minikube.sigs.k8s.io/docs/start/)")
	}
	if status := strings.TrimSpace(string(out)); status != "Running/Running/Running" {
		if err == nil {
			err = fmt.Errorf("status %s", status)
		}
		return fmt.Errorf("minikube is not running (%v): start it with `minikube start --driver=docker`", err)
	}
	// A copy of the minikube context alone: every kubectl call of the dev
	// loop then reaches minikube, whatever the current context is.
	raw, err := kubectl.Kubectl{Run: m.run}.Output(ctx, "config", "view", "--raw", "--minify", "--flatten", "--context=minikube")
	if errors.Is(err, exec.ErrNotFound) {
		return errors.New("kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)")
	}
	if err != nil {
		return fmt.Errorf("read the minikube context of the kubeconfig: %w", err)
	}
	path := filepath.Join(m.state, "kubeconfig-minikube")
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		return fmt.Errorf("write the minikube kubeconfig: %w", err)
	}
	m.k = kubectl.Kubectl{Kubeconfig: path}
	return nil
}

func (m *minikube) kubectl() kubectl.Kubectl { return m.k }

func (m *minikube) loadImage(ctx context.Context, dir, image string) error {
	if err := buildImage(ctx, m.run, m.out, dir, image); err != nil {
		return err
	}
	_, err := m.run.Exec(ctx, command.Cmd{What: "load the image into minikube", Name: "minikube",
		Args: []string{"image", "load", image}, Stdout: m.out, Stderr: m.out})
	return err
}

// mount runs `minikube mount DIR:/data/my-project` for as long as the dev
// loop runs, and waits until the node sees the files. It is a 9p mount:
// edits raise no inotify events in the pod, so the reloader polls.
func (m *minikube) mount(ctx context.Context, dir string) (func(), error) {
	mctx, cancel := context.WithCancel(ctx)
	w := &prefixWriter{prefix: "[mount] ", w: m.out}
	mounter := &helper{
		name: "minikube mount",
		run:  m.run,
		cmd: command.Cmd{What: "minikube mount", Name: "minikube", Args: []string{"mount", dir + ":" + MountPath},
			Stdout: w, Stderr: w, OwnGroup: true},
		out: func(format string, args ...any) { fmt.Fprintf(m.out, "devloop: "+format+"\n", args...) },
	}
	if err := mounter.start(mctx); err != nil {
		cancel()
		return nil, err
	}
	stop := func() {
		fmt.Fprintf(m.out, "devloop: stopping minikube mount\n")
		cancel()
		mounter.wait()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := m.run.Run(ctx, "check the mount", "minikube", "ssh", "--", "test", "-f", MountPath+"/go.mod"); err == nil {
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
func buildImage(ctx context.Context, run *command.Runner, out io.Writer, dir, image string) error {
	b, err := dockerengine.FindBuilder(ctx, run)
	if err != nil {
		return fmt.Errorf("build the dev image: %w", err)
	}
	c := command.Cmd{What: "build the dev image", Name: b.Command, Env: b.Env, Dir: dir,
		Args: []string{"build", "--target", "dev", "-t", image, "."}, Stdout: out, Stderr: out}
	fmt.Fprintf(out, "devloop: %s: %s\n", c.What, c.Line())
	_, err = run.Exec(ctx, c)
	return err
}
