// Command testcluster runs the project's single-node Kubernetes test cluster
// on this machine. See `testcluster --help`.
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

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/test/testcluster"
)

const usage = `usage: testcluster COMMAND [ARGS]

Runs a real single-node Kubernetes %[1]s cluster on this machine for the
project's tests (Linux, root). Binaries are built on first use and cached in
%[2]s (env %[3]s); state lives in %[4]s (env %[5]s).

commands:
  up              start the cluster, or report that it is already up
  down            stop the cluster and remove everything it created on the host
  load IMAGE...   copy images from the local Docker engine into the cluster
  status          show the daemons and whether the cluster serves (exit 1 if not up)
  kubeconfig      print the path of the admin kubeconfig
  env             print shell exports: KUBECONFIG, PATH (kubectl %[1]s), INGRESS_ADDR

Run 'testcluster COMMAND --help' for a command's help.
`

var commandHelp = map[string]string{
	"up":         "usage: testcluster up\n\nInstalls missing Debian packages, takes the binaries from the cache (building them on a miss),\nstarts the cluster and its ingress controller, and waits until the node is Ready and the\ningress answers. Running it again on a healthy cluster only says so; on a cluster whose\nprocesses died it restarts them.\n",
	"down":       "usage: testcluster down\n\nStops every process of the cluster and removes its network namespaces, mounts, cgroups,\ninterfaces, iptables chains and rules, and state directory. Works after a crashed start.\nThe binary cache is kept.\n",
	"load":       "usage: testcluster load IMAGE...\n\nCopies each image from the local Docker engine (docker save) into the cluster's containerd,\nso pods with imagePullPolicy IfNotPresent or Never can run it. An argument ending in .tar\nis imported as an image archive instead.\n",
	"status":     "usage: testcluster status\n\nPrints each daemon's state and whether the node is Ready and the ingress answers.\nExits 1 unless the cluster is fully up.\n",
	"kubeconfig": "usage: testcluster kubeconfig\n\nPrints the path of the cluster's admin kubeconfig.\n",
	"env":        "usage: testcluster env\n\nPrints shell exports for the cluster: eval \"$(testcluster env)\".\n",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := testcluster.ConfigFromEnv(getenv)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stdout, usage, cfg.KubernetesVersion, cfg.CacheDir, testcluster.EnvCacheDir, cfg.StateDir, testcluster.EnvStateDir)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return flag.ErrHelp
	}
	name, rest := args[0], args[1:]
	help, ok := commandHelp[name]
	if !ok {
		return fmt.Errorf("unknown command %q (see testcluster --help)", name)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stdout, help) }
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if name != "load" && fs.NArg() > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", name, fs.Args())
	}

	// Outside a checkout only cached builds can be used; Builder says so
	// on a cache miss.
	sourceDir, _ := repo.Root()
	c := testcluster.New(cfg, command.New(command.OS{}, nil), stdout, sourceDir)
	switch name {
	case "up":
		return c.Up(ctx)
	case "down":
		return c.Down(ctx)
	case "load":
		return c.Load(ctx, fs.Args()...)
	case "status":
		return c.Status(ctx)
	case "kubeconfig":
		fmt.Fprintln(stdout, cfg.KubeconfigPath())
	case "env":
		fmt.Fprintf(stdout, "export KUBECONFIG=%s\nexport PATH=%s:$PATH\nexport INGRESS_ADDR=%s\n", cfg.KubeconfigPath(), cfg.BinDir(), cfg.IngressAddr())
	}
	return nil
}
