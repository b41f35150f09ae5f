// Command postgres-image makes the postgres image k8s/base/postgres.yaml
// names available to Docker: present, pulled, or (where no registry
// answers, on Linux as root) a faithful stand-in built from Debian's
// packages. It starts a Docker engine first if none is running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
	"scalable-app/tools/internal/postgresimage"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/internal/standin"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "postgres-image: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := repo.Root()
	if err != nil {
		return err
	}
	manifest := filepath.Join(root, "k8s", "base", "postgres.yaml")
	fs := flag.NewFlagSet("postgres-image", flag.ContinueOnError)
	image := fs.String("image", "", "image to provide (default: the one "+filepath.Join("k8s", "base", "postgres.yaml")+" names)")
	opts := postgresimage.Options{Host: standin.ThisHost(), Log: os.Stdout, ToolsDir: filepath.Join(root, "tools")}
	fs.StringVar(&opts.CacheDir, "cache-dir", envOr("POSTGRESIMAGE_CACHE", postgresimage.DefaultCacheDir), "directory keeping the root filesystem archives (env POSTGRESIMAGE_CACHE)")
	fs.StringVar(&opts.Mirror, "mirror", envOr("DEBIAN_MIRROR", "http://deb.debian.org/debian"), "Debian mirror (env DEBIAN_MIRROR)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: postgres-image [flags]\n\nProvides the manifests' postgres image to Docker: present, pulled, or a stand-in\nbuilt from Debian's PostgreSQL packages when no registry answers (needs root).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	if opts.Ref = *image; opts.Ref == "" {
		if opts.Ref, err = postgresimage.ManifestImage(manifest); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts.Run = command.New(command.OS{}, nil)
	opts.Source = standin.Source{Run: opts.Run, Docker: "docker"}
	if _, err := dockerengine.Ensure(ctx, opts.Run, dockerengine.Options{Log: os.Stdout, KeepRunning: true}); err != nil {
		return err
	}
	return postgresimage.Ensure(ctx, opts)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
