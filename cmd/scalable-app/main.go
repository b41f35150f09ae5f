// Command scalable-app serves "Hello from Kubernetes" on port 5000, with
// health probes, Prometheus metrics and graceful shutdown for Kubernetes.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"scalable-app/internal/config"
)

func main() {
	ctx, stop := shutdownOnSignal(context.Background())
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "scalable-app: %v\n", err)
		os.Exit(1)
	}
}

// shutdownOnSignal cancels the context on the first SIGTERM or SIGINT, which
// starts a graceful shutdown, and exits at once on the second. Registering
// handlers explicitly also makes SIGTERM work when the process is PID 1 in a
// container, where the kernel ignores signals that have no handler.
func shutdownOnSignal(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "scalable-app: received %v, shutting down (send again to exit at once)\n", s)
		cancel()
		if s, ok = <-sigs; ok {
			fmt.Fprintf(os.Stderr, "scalable-app: received %v again, exiting now\n", s)
			os.Exit(1)
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(sigs)
		cancel()
	}
}
