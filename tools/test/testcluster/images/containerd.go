package images

import (
	"context"
	"fmt"
	"strings"

	"scalable-app/tools/internal/command"
)

// Namespace is the containerd namespace the kubelet's CRI plugin uses.
const Namespace = "k8s.io"

// Store is the cluster's own containerd, reached through ctr.
type Store struct {
	Runner *command.Runner
	Socket string
}

func (s Store) ctr(args ...string) []string {
	return append([]string{"--address", s.Socket, "--namespace", Namespace}, args...)
}

// Has reports whether the image ref is present.
func (s Store) Has(ctx context.Context, ref string) (bool, error) {
	out, err := s.Runner.Output(ctx, "list cluster images", "ctr", s.ctr("images", "ls", "-q")...)
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == ref {
			return true, nil
		}
	}
	return false, nil
}

// ImportArchive imports an image archive (OCI layout or docker save format).
func (s Store) ImportArchive(ctx context.Context, archive string) error {
	return s.Runner.Run(ctx, "import image archive "+archive, "ctr", s.ctr("images", "import", archive)...)
}

// ImportFromDocker streams `docker save ref` into the cluster, as
// `minikube image load` does, so pods can use the image without a registry.
func (s Store) ImportFromDocker(ctx context.Context, ref string) error {
	from := command.Cmd{Name: "docker", Args: []string{"save", ref}}
	to := command.Cmd{Name: "ctr", Args: s.ctr("images", "import", "-")}
	if err := s.Runner.Pipe(ctx, "load image "+ref+" from docker", from, to); err != nil {
		return err
	}
	return nil
}

// Normalize turns a short Docker reference into the name containerd and the
// kubelet use: scalable-app:latest -> docker.io/library/scalable-app:latest.
func Normalize(ref string) string {
	name, tag := ref, ""
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		name, tag = ref[:i], ref[i:]
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i:]
	} else {
		tag = ":latest"
	}
	first, _, found := strings.Cut(name, "/")
	switch {
	case !found:
		name = "docker.io/library/" + name
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		name = "docker.io/" + name
	}
	return name + tag
}

// ErrNoDocker is returned when no Docker engine answers.
var ErrNoDocker = fmt.Errorf("no Docker engine is running (docker info failed): start dockerd, then load again")
