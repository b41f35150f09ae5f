// Command monitoring-images makes the monitoring stack's images available to
// Docker (prom/prometheus and the postgres exporter, as k8s/monitoring and
// k8s/base/postgres.yaml name them): present, pulled, or (where no registry
// answers, on Linux as root) stand-ins built from the Go module proxy. It
// starts a Docker engine first if none is running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
	"scalable-app/tools/internal/gostandin"
	"scalable-app/tools/internal/monitoringimages"
	"scalable-app/tools/internal/standin"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "monitoring-images: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("monitoring-images", flag.ContinueOnError)
	opts := gostandin.Options{Host: standin.ThisHost(), Target: "monitoring-images"}
	opts.Log = os.Stdout
	fs.StringVar(&opts.CacheDir, "cache-dir", gostandin.DefaultCacheDir, "directory keeping the stand-ins' builds, one folder per image and version")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: monitoring-images [flags]\n\nProvides these images to Docker: present, pulled, or stand-ins built from the\nGo module proxy when no registry answers (needs root):\n")
		for _, r := range monitoringimages.All() {
			fmt.Fprintf(fs.Output(), "  %s\n", r.Ref)
		}
		fmt.Fprintln(fs.Output())
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts.Run = command.New(command.OS{}, nil)
	opts.Source = standin.Source{Run: opts.Run, Docker: "docker"}
	if _, err := dockerengine.Ensure(ctx, opts.Run, dockerengine.Options{Log: os.Stdout, KeepRunning: true}); err != nil {
		return err
	}
	for _, r := range monitoringimages.All() {
		if err := gostandin.Ensure(ctx, opts, r); err != nil {
			return err
		}
	}
	return nil
}
