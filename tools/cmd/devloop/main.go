// Command devloop is `make dev`: the hot-reload dev pod of k8s/dev, with the
// working copy mounted into the node and http://localhost:8080 forwarded to
// it, in minikube or in the project's test cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"scalable-app/tools/dev/devloop"
	"scalable-app/tools/internal/command"
)

func main() {
	ctx, stop := stopContext()
	defer stop()
	err := run(ctx, os.Args[1:], devloop.Console(os.Stdout, os.Stderr), os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "devloop: %v\n", err)
		stop()
		os.Exit(1)
	}
}

// stopContext ends on Ctrl-C, SIGTERM or a closed terminal (SIGHUP), all of
// which stop the dev loop with its cleanup. A broken stdout (`make dev |
// tee log`, tee gone) must not kill it before the cleanup either: catching
// SIGPIPE turns it into write errors, which devloop.Console answers by
// writing to stderr. Caught, not ignored, so that the children keep the
// default SIGPIPE.
func stopContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	return ctx, func() { stop(); signal.Stop(pipe) }
}

func run(ctx context.Context, args []string, out, stderr io.Writer) error {
	o := devloop.DefaultOptions()
	o.Out = out
	verbose := false
	fs := flag.NewFlagSet("devloop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Backend, "backend", o.Backend, "cluster: minikube, testcluster (the project's own, make cluster-up), or auto (minikube when it runs, else the test cluster)")
	fs.StringVar(&o.Testcluster, "testcluster", o.Testcluster, "the test cluster's CLI (built by make beside devloop, else found in PATH)")
	fs.StringVar(&o.Dir, "dir", o.Dir, "source tree to mount at "+devloop.MountPath+" (the repository root)")
	fs.StringVar(&o.Image, "image", o.Image, "dev image (docker build --target dev), built and loaded when the node lacks it")
	fs.BoolVar(&o.Rebuild, "rebuild", o.Rebuild, "build and load the dev image even when the node has it (after changing go.mod)")
	fs.BoolVar(&o.Keep, "keep", o.Keep, "leave the dev Deployment running at exit (one that existed before devloop started always stays)")
	fs.IntVar(&o.LocalPort, "port", o.LocalPort, "local port forwarded to the pod's port 5000")
	fs.DurationVar(&o.RolloutTimeout, "rollout-timeout", o.RolloutTimeout, "how long the rollout (the pod's first build) may take")
	fs.BoolVar(&verbose, "verbose", verbose, "log every command devloop runs, with its outcome, to stderr")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, `Usage: devloop [flags]

The seed's hot-reload dev environment in one command: checks the cluster,
the %s namespace and the dev image (builds and loads it when missing), checks
that the pod's user (uid %d) can read the working copy, mounts it at %s in
the node, applies k8s/dev/deployment-dev.yaml, waits for the rollout
(reporting a failing pod at once, with its events and last log lines),
forwards localhost:8080 to the pod (restarting the forward if it drops) and
streams the pod's logs. Save a file: the pod rebuilds and serves it within
seconds. Ctrl-C, SIGTERM or a closed terminal stops the port-forward, the
logs and the mount, and deletes the Deployment if this run created it,
unless --keep; a Deployment that existed before devloop started is left
running, and so is the namespace.

Flags:
`, devloop.Namespace, devloop.PodUID, devloop.MountPath)
			fs.VisitAll(func(f *flag.Flag) {
				fmt.Fprintf(out, "  --%s (default %q)\n      %s\n", f.Name, f.DefValue, f.Usage)
			})
			fmt.Fprint(out, "  --help\n      print this help and exit\n")
			return err
		}
		return fmt.Errorf("%w (see --help)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	var log io.Writer
	if verbose {
		log = stderr
	}
	return devloop.Run(ctx, command.New(command.OS{}, log), o)
}
