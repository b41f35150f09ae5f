// Command baseimage makes the Dockerfile's build-stage base image available:
// present, pulled, or (where no registry answers, on Linux as root) a
// faithful local stand-in. It starts a Docker engine first if none
// is running, and gives the docker client the buildx plugin the Dockerfile's
// BuildKit features need when it lacks one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"scalable-app/tools/internal/baseimage"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "baseimage: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("baseimage", flag.ContinueOnError)
	run := command.New(command.OS{}, os.Stderr)
	opts := baseimage.Options{Run: run, Host: baseimage.ThisHost(), Log: os.Stdout, Docker: "docker", GOROOT: runtime.GOROOT()}
	fs.StringVar(&opts.Dockerfile, "dockerfile", "Dockerfile", "Dockerfile whose first FROM names the base image")
	fs.StringVar(&opts.CacheDir, "cache-dir", envOr("BASEIMAGE_CACHE", baseimage.DefaultCacheDir), "directory keeping the root filesystem archive (env BASEIMAGE_CACHE)")
	fs.StringVar(&opts.Mirror, "mirror", envOr("DEBIAN_MIRROR", "http://deb.debian.org/debian"), "Debian mirror for debootstrap (env DEBIAN_MIRROR)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: baseimage [flags]\n\nCreates the Dockerfile's golang base image locally when it is missing (needs root).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run = command.New(command.OS{}, nil)
	if _, err := dockerengine.Ensure(ctx, run, dockerengine.Options{Log: os.Stdout, KeepRunning: true}); err != nil {
		return err
	}
	if err := dockerengine.EnsureBuildx(ctx, run, os.Stdout); err != nil {
		return err
	}
	_, err := baseimage.Ensure(ctx, opts)
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
