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
	"scalable-app/internal/logging"
)

func main() {
	// main owns the log writer, so that every exit, the second signal's
	// included, writes out the lines still buffered.
	stdout := logging.NewWriter(os.Stdout, logging.BufferSize)
	exit := func(code int) {
		if err := stdout.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "scalable-app: %v\n", err)
		}
		os.Exit(code)
	}
	ctx, stop := shutdownOnSignal(context.Background(), func() { exit(1) })
	err := run(ctx, os.Args[1:], os.Getenv, stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, config.ErrHelp) {
		fmt.Fprintf(os.Stderr, "scalable-app: %v\n", err)
		exit(1)
	}
	exit(0)
}

// shutdownOnSignal cancels the context on the first SIGTERM or SIGINT, which
// starts a graceful shutdown, and calls exitNow on the second. Registering
// handlers explicitly also makes SIGTERM work when the process is PID 1 in a
// container, where the kernel ignores signals that have no handler.
func shutdownOnSignal(parent context.Context, exitNow func()) (context.Context, func()) {
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
			exitNow()
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(sigs)
		cancel()
	}
}
