// Package build produces the binaries and images the test cluster runs and
// caches them per version outside the checkout, so a later run (or a fresh
// clone on the same machine) needs no Go build at all.
//
// Kubernetes and Traefik cannot be built with a plain `go install` from the
// module proxy (their go.mod files use replace directives), so each has a
// wrapper module beside this file (kubernetes/go.mod, traefik/go.mod) that
// requires the released version and repeats the replacements. They are
// separate modules so the service's go.mod stays small. CoreDNS and the
// local-path provisioner have no replace directives: `go install
// module@version` builds them as released.
package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"scalable-app/tools/internal/aptget"
	"scalable-app/tools/internal/cachedir"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/gomod"
	"scalable-app/tools/test/testcluster/images"
)

// KubernetesCommands are the binaries built from k8s.io/kubernetes.
func KubernetesCommands() []string {
	return []string{
		"kube-apiserver", "kube-controller-manager", "kube-scheduler",
		"kubelet", "kube-proxy", "kubectl",
	}
}

// Builder builds into the cache on a miss.
type Builder struct {
	Runner *command.Runner
	// SourceDir is the repository root; only needed on a cache miss.
	SourceDir string
}

func (b Builder) moduleDir(name string) (string, error) {
	if b.SourceDir == "" {
		return "", errors.New("cache miss and no source checkout found: run the harness from inside the repository")
	}
	d := filepath.Join(b.SourceDir, "tools", "test", "testcluster", "build", name)
	if _, err := os.Stat(filepath.Join(d, "go.mod")); err != nil {
		return "", fmt.Errorf("build module %s: %w", name, err)
	}
	return d, nil
}

// goBuild runs a static, path-independent go build; the same flags as any
// other build of these modules on the machine, so the Go build cache is shared.
func (b Builder) goBuild(ctx context.Context, what, dir, ldflags, out string, pkgs ...string) error {
	args := append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", out}, pkgs...)
	_, err := b.Runner.Exec(ctx, command.Cmd{
		What: what, Name: "go", Args: args, Dir: dir,
		Env: []string{"CGO_ENABLED=0", "GOWORK=off"},
	})
	return err
}

// Kubernetes ensures dir holds the Kubernetes binaries of version (vX.Y.Z).
func (b Builder) Kubernetes(ctx context.Context, dir, version string) error {
	if cachedir.Complete(dir) {
		return nil
	}
	mod, err := b.moduleDir("kubernetes")
	if err != nil {
		return err
	}
	if got, _ := gomod.Required(filepath.Join(mod, "go.mod"), "k8s.io/kubernetes"); got != version {
		return fmt.Errorf("build module %s requires k8s.io/kubernetes %s, harness wants %s", mod, got, version)
	}
	major, minor, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	// Without these the binaries report v0.0.0 and kubectl warns about skew.
	var ld []string
	ld = append(ld, "-s", "-w")
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld = append(ld,
			"-X", p+".gitVersion="+version,
			"-X", p+".gitMajor="+major,
			"-X", p+".gitMinor="+minor,
			"-X", p+".gitTreeState=clean",
		)
	}
	var pkgs []string
	for _, c := range KubernetesCommands() {
		pkgs = append(pkgs, "k8s.io/kubernetes/cmd/"+c)
	}
	return cachedir.Fill(dir, func(tmp string) error {
		return b.goBuild(ctx, "build Kubernetes "+version, mod, strings.Join(ld, " "), tmp+"/", pkgs...)
	})
}

// Traefik ensures dir holds traefik.tar, an image named ref.
func (b Builder) Traefik(ctx context.Context, dir, version, ref string) error {
	if cachedir.Complete(dir) {
		return nil
	}
	mod, err := b.moduleDir("traefik")
	if err != nil {
		return err
	}
	if got, _ := gomod.Required(filepath.Join(mod, "go.mod"), "github.com/traefik/traefik/v3"); got != version {
		return fmt.Errorf("build module %s requires traefik %s, harness wants %s", mod, got, version)
	}
	ld := "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=" + version
	return cachedir.Fill(dir, func(tmp string) error {
		bin := filepath.Join(tmp, "traefik")
		if err := b.goBuild(ctx, "build Traefik "+version, mod, ld, bin, "github.com/traefik/traefik/v3/cmd/traefik"); err != nil {
			return err
		}
		if err := images.WriteArchive(filepath.Join(tmp, "traefik.tar"), ref, bin); err != nil {
			return err
		}
		// The archive holds the binary; keeping both would double the cache.
		return os.Remove(bin)
	})
}

// goInstall builds pkg@version into gobin the way `go install` does for a
// released module: with its own go.mod and go.sum, ignoring this checkout.
func (b Builder) goInstall(ctx context.Context, what, pkgAtVersion, ldflags, gobin string) error {
	_, err := b.Runner.Exec(ctx, command.Cmd{
		What: what, Name: "go", Args: []string{"install", "-trimpath", "-ldflags", ldflags, pkgAtVersion},
		Dir: gobin, Env: []string{"CGO_ENABLED=0", "GOWORK=off", "GOBIN=" + gobin},
	})
	return err
}

// imageLabels are the OCI labels of an image built from an upstream release.
func imageLabels(title, version, source string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":   title,
		"org.opencontainers.image.version": version,
		"org.opencontainers.image.source":  source,
	}
}

// CoreDNS ensures dir holds coredns.tar, an image named ref of CoreDNS
// version (vX.Y.Z), the cluster's DNS server.
func (b Builder) CoreDNS(ctx context.Context, dir, version, ref string) error {
	return cachedir.Fill(dir, func(tmp string) error {
		if err := b.goInstall(ctx, "build CoreDNS "+version, "github.com/coredns/coredns@"+version, "-s -w", tmp); err != nil {
			return err
		}
		bin := filepath.Join(tmp, "coredns")
		img := images.Image{
			Ref:        ref,
			Files:      []images.File{{Name: "coredns", Src: bin, Mode: 0o755}},
			Entrypoint: []string{"/coredns"},
			Labels:     imageLabels("CoreDNS", version, "https://github.com/coredns/coredns"),
		}
		if err := img.WriteArchive(filepath.Join(tmp, "coredns.tar")); err != nil {
			return err
		}
		return os.Remove(bin)
	})
}

// LocalPath ensures dir holds local-path-provisioner.tar, an image named ref
// of Rancher's local-path-provisioner version (vX.Y.Z), which provisions
// PersistentVolumes as directories on the node.
func (b Builder) LocalPath(ctx context.Context, dir, version, ref string) error {
	return cachedir.Fill(dir, func(tmp string) error {
		mod := "github.com/rancher/local-path-provisioner@" + version
		if err := b.goInstall(ctx, "build local-path-provisioner "+version, mod, "-s -w", tmp); err != nil {
			return err
		}
		bin := filepath.Join(tmp, "local-path-provisioner")
		img := images.Image{
			Ref:        ref,
			Files:      []images.File{{Name: "local-path-provisioner", Src: bin, Mode: 0o755}},
			Entrypoint: []string{"/local-path-provisioner"},
			Labels:     imageLabels("local-path-provisioner", version, "https://github.com/rancher/local-path-provisioner"),
		}
		if err := img.WriteArchive(filepath.Join(tmp, "local-path-provisioner.tar")); err != nil {
			return err
		}
		return os.Remove(bin)
	})
}

// Busybox ensures dir holds busybox.tar, an image named ref holding BusyBox
// from Debian's busybox-static package of version debVersion: /bin/busybox
// and a link for each of its applets (sh, mkdir, rm, ...). The storage
// provisioner runs its helper pods (mkdir and rm of volume directories) on it.
func (b Builder) Busybox(ctx context.Context, dir, debVersion, ref string) error {
	return cachedir.Fill(dir, func(tmp string) error {
		root, err := aptget.Extract(ctx, b.Runner, tmp, "busybox-static", debVersion)
		if err != nil {
			return err
		}
		bin := aptget.BusyboxPath(root)
		out, err := b.Runner.Output(ctx, "list BusyBox's applets", bin, "--list")
		if err != nil {
			return err
		}
		files := []images.File{{Name: "bin/busybox", Src: bin, Mode: 0o755}}
		for _, a := range strings.Fields(string(out)) {
			if a != "busybox" && !strings.Contains(a, "/") {
				files = append(files, images.File{Name: "bin/" + a, Link: "busybox"})
			}
		}
		img := images.Image{
			Ref:    ref,
			Files:  files,
			Cmd:    []string{"/bin/sh"},
			Env:    []string{"PATH=/bin"},
			Labels: imageLabels("BusyBox (Debian busybox-static)", debVersion, "https://packages.debian.org/busybox-static"),
		}
		if err := img.WriteArchive(filepath.Join(tmp, "busybox.tar")); err != nil {
			return err
		}
		if err := os.RemoveAll(root); err != nil {
			return fmt.Errorf("clean up busybox build: %w", err)
		}
		return nil
	})
}

// Pause ensures dir holds pause.tar, the sandbox image named ref.
func (b Builder) Pause(ctx context.Context, dir, ref string) error {
	if cachedir.Complete(dir) {
		return nil
	}
	if b.SourceDir == "" {
		return errors.New("cache miss and no source checkout found: run the harness from inside the repository")
	}
	return cachedir.Fill(dir, func(tmp string) error {
		bin := filepath.Join(tmp, "pause")
		if err := b.goBuild(ctx, "build pause", filepath.Join(b.SourceDir, "tools"), "-s -w", bin, "./cmd/pause"); err != nil {
			return err
		}
		return images.WriteArchive(filepath.Join(tmp, "pause.tar"), ref, bin)
	})
}
