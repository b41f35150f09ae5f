package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Env is one environment the pipeline deploys to: a namespace of the
// cluster, its overlay and the Ingress host it serves.
type Env struct {
	Name      string
	Namespace string
	Overlay   string // relative to the checkout
	Host      string // the overlay's Ingress host
}

// The environments, as k8s/overlays defines them.
var (
	Test = Env{Name: "test", Namespace: "test", Overlay: "k8s/overlays/test", Host: "test.scalable.local"}
	Prod = Env{Name: "prod", Namespace: "prod", Overlay: "k8s/overlays/prod", Host: "scalable.local"}
)

// EnvNamed returns the environment called name.
func EnvNamed(name string) (Env, error) {
	for _, e := range []Env{Test, Prod} {
		if e.Name == name {
			return e, nil
		}
	}
	return Env{}, fmt.Errorf("no environment %q: test or prod", name)
}

// Deployment, container and labels the overlays give the service.
const (
	deployment = "scalable-app"
	container  = "scalable-app"
	selector   = "app=scalable-app"
	// imageName is the image's name in the manifests, which the pinned
	// overlay replaces.
	imageName = "scalable-app"
	// verifiedAnnotation on test's Deployment names the digest that passed
	// test's smoke test: prod takes no other.
	verifiedAnnotation = "pipeline.scalable-app/verified-digest"
)

// ImageRef is an image reference split the way a kustomization's
// `images:` entry wants it.
type ImageRef struct {
	Name   string // localhost:5001/scalable-app
	Tag    string
	Digest string // sha256:...
}

// ParseImageRef splits name[:tag][@digest].
func ParseImageRef(ref string) (ImageRef, error) {
	var r ImageRef
	rest := ref
	if i := strings.Index(rest, "@"); i >= 0 {
		r.Digest = rest[i+1:]
		rest = rest[:i]
		if !strings.HasPrefix(r.Digest, "sha256:") || len(r.Digest) != len("sha256:")+64 {
			return ImageRef{}, fmt.Errorf("image %q: the digest is not sha256:<64 hex digits>", ref)
		}
	}
	// A colon after the last slash starts the tag; one before is a port.
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		r.Tag = rest[i+1:]
		rest = rest[:i]
	}
	r.Name = rest
	if r.Name == "" || strings.ContainsAny(r.Name, " \t\n") {
		return ImageRef{}, fmt.Errorf("image %q has no valid name", ref)
	}
	return r, nil
}

// String puts the reference back together; with a digest, the tag is left
// out, since the digest alone decides what runs.
func (r ImageRef) String() string {
	if r.Digest != "" {
		return r.Name + "@" + r.Digest
	}
	if r.Tag != "" {
		return r.Name + ":" + r.Tag
	}
	return r.Name
}

// pinnedOverlay writes a kustomization that is env's overlay with the
// service's image replaced by ref, and returns its directory, under the
// checkout's bin/ (git ignores it; Kustomize reads only relative paths).
// The caller removes it. Nothing pinned is ever committed.
func pinnedOverlay(root string, env Env, ref ImageRef) (string, error) {
	parent := filepath.Join(root, "bin")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("make %s: %w", parent, err)
	}
	dir, err := os.MkdirTemp(parent, "pipeline-"+env.Name+"-")
	if err != nil {
		return "", fmt.Errorf("make the pinned overlay's directory: %w", err)
	}
	base, err := filepath.Rel(dir, filepath.Join(root, env.Overlay))
	if err != nil {
		return "", err
	}
	lines := []string{
		"# Written by the pipeline for one deployment; not committed.",
		"apiVersion: kustomize.config.k8s.io/v1beta1",
		"kind: Kustomization",
		"resources:",
		"  - " + filepath.ToSlash(base),
		"images:",
		"  - name: " + imageName,
		"    newName: " + ref.Name,
	}
	switch {
	case ref.Digest != "":
		lines = append(lines, "    digest: "+ref.Digest)
	case ref.Tag != "":
		lines = append(lines, "    newTag: "+ref.Tag)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write the pinned overlay: %w", err)
	}
	return dir, nil
}
