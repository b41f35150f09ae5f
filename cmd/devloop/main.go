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

	"scalable-app/internal/devloop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "devloop: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o := devloop.Options{Out: out}
	fs := flag.NewFlagSet("devloop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Backend, "backend", "auto", "cluster: minikube, testcluster (the project's own, make cluster-up), or auto (minikube when it runs, else the test cluster)")
	fs.StringVar(&o.Dir, "dir", ".", "source tree to mount at "+devloop.MountPath+" (the repository root)")
	fs.StringVar(&o.Image, "image", "scalable-app:dev", "dev image (docker build --target dev), built and loaded when the node lacks it")
	fs.BoolVar(&o.Rebuild, "rebuild", false, "build and load the dev image even when the node has it (after changing go.mod)")
	fs.BoolVar(&o.Keep, "keep", false, "leave the dev Deployment running at exit (one that existed before devloop started always stays)")
	fs.IntVar(&o.LocalPort, "port", 8080, "local port forwarded to the pod's port 5000")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, `Usage: devloop [flags]

The seed's hot-reload dev environment in one command: checks the cluster,
the %s namespace and the dev image (builds and loads it when missing), mounts
the working copy at %s in the node, applies k8s/dev/deployment-dev.yaml,
waits for the rollout, forwards localhost:8080 to the pod (restarting the
forward if it drops) and streams the pod's logs. Save a file: the pod
rebuilds and serves it within seconds. Ctrl-C stops the port-forward, the
logs and the mount, and deletes the Deployment if devloop created it, unless
--keep; a Deployment that existed before devloop started is left running.

Flags:
`, devloop.Namespace, devloop.MountPath)
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
	return devloop.Run(ctx, o)
}
