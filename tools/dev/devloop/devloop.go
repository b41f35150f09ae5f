// Package devloop is `make dev`: the seed's three-terminal hot-reload
// workflow (mount the source into the node, apply the dev Deployment,
// port-forward 8080) as one command that checks its prerequisites, keeps
// the port-forward alive, streams the pod's logs and, when it is stopped
// (Ctrl-C, SIGTERM, a closed terminal), stops all it started.
//
// Every external program (minikube, kubectl, the test cluster's CLI
// `testcluster`, docker) runs through the injected command.Runner, so the
// dev loop's decisions are unit-tested with command.Fake.
package devloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/kubectl"
)

// Names fixed by k8s/dev/deployment-dev.yaml (a test checks they agree).
const (
	Namespace  = "test"
	Deployment = "scalable-app-dev"
	MountPath  = "/data/my-project" // the Deployment's hostPath
	PodPort    = 5000
	// PodUID and PodGID are the pod's runAsUser and runAsGroup, the dev
	// image's `dev` user: it must be able to read the mounted source.
	PodUID = 10001
	PodGID = 10001
)

// Options configure Run. Start from DefaultOptions.
type Options struct {
	Backend     string // "auto", "minikube" or "testcluster"
	Testcluster string // the test cluster's CLI (tools/cmd/testcluster)
	Dir         string // source tree to mount: the repository root
	Image       string
	Rebuild     bool // build and load the image even when the node has it
	Keep        bool // leave a Deployment this run created running at exit
	LocalPort   int
	Out         io.Writer // progress, build output and the pod's logs

	// PollInterval is how often the rollout and the dev pod are checked,
	// RolloutTimeout how long the rollout may take (the pod's first build).
	PollInterval   time.Duration
	RolloutTimeout time.Duration
}

// DefaultOptions are the dev loop's defaults, also those of its flags.
func DefaultOptions() Options {
	return Options{
		Backend:        "auto",
		Testcluster:    testclusterBesideExecutable(),
		Dir:            ".",
		Image:          "scalable-app:dev",
		LocalPort:      8080,
		Out:            os.Stdout,
		PollInterval:   2 * time.Second,
		RolloutTimeout: 10 * time.Minute,
	}
}

// testclusterBesideExecutable is the testcluster program that the Makefile
// builds into the same directory as devloop (bin/tools), else "testcluster"
// from PATH.
func testclusterBesideExecutable() string {
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), "testcluster")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return "testcluster"
}

// backend is a cluster the dev loop can run on.
type backend interface {
	name() string
	// check fails with a one-line hint when the cluster is not usable;
	// once it succeeds, kubectl talks to the cluster.
	check(ctx context.Context) error
	kubectl() kubectl.Kubectl
	// loadImage builds the dev image and makes it available to the node.
	loadImage(ctx context.Context, dir, image string) error
	// mount makes dir visible in the node at MountPath until stop is called.
	mount(ctx context.Context, dir string) (stop func(), err error)
}

// loop is one run of the dev loop.
type loop struct {
	o    Options
	run  *command.Runner
	dir  string // absolute source directory
	k    kubectl.Kubectl
	undo []func(ctx context.Context) // what this run started or created, undone in reverse
}

func (l *loop) progress(format string, args ...any) {
	fmt.Fprintf(l.o.Out, "devloop: "+format+"\n", args...)
}

// Run runs the dev loop with run until ctx ends, then stops what it started
// and deletes what it created, and returns nil. A failure on the way (the
// dev pod crash-looping, kubectl unable to tell whether the Deployment
// exists) is returned after the same cleanup.
func Run(ctx context.Context, run *command.Runner, o Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("resolve the source directory %s: %w", o.Dir, err)
	}
	manifest := filepath.Join(dir, "k8s", "dev", "deployment-dev.yaml")
	if _, err := os.Stat(manifest); err != nil {
		return fmt.Errorf("%s not found: run from the repository root or pass --dir", manifest)
	}
	// Before anything is built or applied: a pod that cannot read its
	// source only crash-loops.
	if err := checkReadable(dir, PodUID, PodGID); err != nil {
		return err
	}
	state, err := os.MkdirTemp("", "devloop-")
	if err != nil {
		return fmt.Errorf("create the dev loop's state directory: %w", err)
	}
	defer os.RemoveAll(state)

	l := &loop{o: o, run: run, dir: dir}
	defer l.cleanup(ctx)
	err = l.start(ctx, state, manifest)
	if err == nil {
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		// Stopped on the way: a normal end, not a failure.
		l.progress("stopping what this run started (namespace %s stays, and so does a Deployment that existed before)", Namespace)
		return nil
	}
	return err
}

func (o Options) validate() error {
	switch {
	case o.Out == nil:
		return errors.New("devloop: no output writer (start from DefaultOptions)")
	case o.LocalPort <= 0 || o.LocalPort > 65535:
		return fmt.Errorf("invalid local port %d", o.LocalPort)
	case o.Image == "":
		return errors.New("no dev image named (--image)")
	case o.PollInterval <= 0 || o.RolloutTimeout <= 0:
		return errors.New("devloop: poll interval and rollout timeout must be positive (start from DefaultOptions)")
	}
	return nil
}

// start brings the dev loop up: checks, image, mount, Deployment, rollout,
// port-forward and logs. What it starts or creates is pushed on l.undo as
// it goes.
func (l *loop) start(ctx context.Context, state, manifest string) error {
	b, err := pickBackend(ctx, l, state)
	if err != nil {
		return err
	}
	l.progress("cluster: %s", b.name())
	l.k = b.kubectl()
	l.k.Run, l.k.Dir = l.run, l.dir

	if err := l.ensureNamespace(ctx); err != nil {
		return err
	}
	if err := l.ensureImage(ctx, b); err != nil {
		return err
	}
	if err := checkPortFree(l.o.LocalPort); err != nil {
		return err
	}

	l.progress("mounting %s at %s in the node", l.dir, MountPath)
	unmount, err := b.mount(ctx, l.dir)
	if err != nil {
		return err
	}
	l.undo = append(l.undo, func(context.Context) { unmount() })

	if err := l.applyDeployment(ctx, manifest); err != nil {
		return err
	}
	if err := l.waitRollout(ctx); err != nil {
		return err
	}
	return l.startHelpers(ctx)
}

// cleanup undoes, in reverse order, what start did. It runs after ctx has
// ended, so it has a context of its own.
func (l *loop) cleanup(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for i := len(l.undo) - 1; i >= 0; i-- {
		l.undo[i](cctx)
	}
}

func pickBackend(ctx context.Context, l *loop, state string) (backend, error) {
	mk := &minikube{run: l.run, out: l.o.Out, state: state}
	tc := &testCluster{run: l.run, out: l.o.Out, bin: l.o.Testcluster}
	switch l.o.Backend {
	case "minikube":
		return mk, mk.check(ctx)
	case "testcluster":
		return tc, tc.check(ctx)
	case "", "auto":
		errMk := mk.check(ctx)
		if errMk == nil {
			return mk, nil
		}
		errTc := tc.check(ctx)
		if errTc == nil {
			return tc, nil
		}
		return nil, fmt.Errorf("no cluster to run in:\n  minikube: %v\n  test cluster: %v", errMk, errTc)
	default:
		return nil, fmt.Errorf("invalid backend %q: must be auto, minikube or testcluster", l.o.Backend)
	}
}

// ensureNamespace creates the namespace when it is missing. It is never
// deleted: the test environment shares it.
func (l *loop) ensureNamespace(ctx context.Context) error {
	present, err := l.exists(ctx, "namespace", Namespace)
	if err != nil {
		return err
	}
	if present {
		return nil
	}
	l.progress("namespace %s does not exist: creating it from k8s/dev/namespace.yaml (it stays after the dev loop)", Namespace)
	if _, err := l.k.Output(ctx, "apply", "-f", filepath.Join("k8s", "dev", "namespace.yaml")); err != nil {
		return fmt.Errorf("create namespace %s: %w", Namespace, err)
	}
	return nil
}

func (l *loop) ensureImage(ctx context.Context, b backend) error {
	present, err := l.nodeHasImage(ctx, l.o.Image)
	if err != nil {
		return err
	}
	switch {
	case present && !l.o.Rebuild:
		l.progress("image %s: present in the cluster (--rebuild builds it again)", l.o.Image)
		return nil
	case !present:
		l.progress("image %s is not in the cluster: building and loading it (first time: a few minutes)", l.o.Image)
	}
	return b.loadImage(ctx, l.dir, l.o.Image)
}

func checkPortFree(port int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("local port %d for the port-forward is not usable (stop what uses it or pass --port): %w", port, err)
	}
	return ln.Close()
}

// applyDeployment applies the dev Deployment. Only a Deployment that was
// absent before and that kubectl reports as created is deleted at exit:
// one that existed (or appeared meanwhile) is left running.
func (l *loop) applyDeployment(ctx context.Context, manifest string) error {
	existed, err := l.exists(ctx, "deployment", Deployment)
	if err != nil {
		return err
	}
	l.progress("applying %s", relTo(l.dir, manifest))
	out, err := l.k.Output(ctx, "apply", "-f", relTo(l.dir, manifest))
	if err != nil {
		return fmt.Errorf("apply the dev Deployment: %w", err)
	}
	created := !existed && appliedAs(out, "deployment.apps/"+Deployment) == "created"
	if existed {
		// Its pod may hold a view of the node directory from before this
		// mount: a new pod sees the mount.
		l.progress("deployment/%s existed before: restarting its pod (it stays after the dev loop)", Deployment)
		if _, err := l.k.Output(ctx, "rollout", "restart", "deployment/"+Deployment, "-n", Namespace); err != nil {
			return fmt.Errorf("restart the dev pod: %w", err)
		}
	}
	if created && !l.o.Keep {
		l.undo = append(l.undo, l.deleteDeployment)
	}
	return nil
}

func (l *loop) deleteDeployment(ctx context.Context) {
	l.progress("deleting deployment/%s, which this run created (--keep leaves it running)", Deployment)
	if _, err := l.k.Output(ctx, "delete", "deployment", Deployment, "-n", Namespace, "--wait=false"); err != nil {
		l.progress("%v", err)
	}
}

// appliedAs is what `kubectl apply` did to object ("created", "configured",
// "unchanged"), from its output lines such as "deployment.apps/x created".
func appliedAs(out, object string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), object+" "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// exists asks the API server whether the object exists. Only kubectl's
// answer that it is not found (--ignore-not-found prints nothing) means
// absent; any other failure is returned, so that the dev loop never takes
// an object it could not see for one it may create and delete.
func (l *loop) exists(ctx context.Context, kind, name string) (bool, error) {
	args := []string{"get", kind, name, "--ignore-not-found", "-o", "name"}
	if kind != "namespace" {
		args = append(args, "-n", Namespace)
	}
	out, err := l.k.Output(ctx, args...)
	if err != nil {
		return false, fmt.Errorf("cannot tell whether %s %s exists, so the dev loop stops without changing anything: %w", kind, name, err)
	}
	return strings.TrimSpace(out) != "", nil
}

// nodeHasImage asks the API server which images the nodes hold (kubelet
// reports them), which works the same for every container runtime.
func (l *loop) nodeHasImage(ctx context.Context, image string) (bool, error) {
	out, err := l.k.Output(ctx, "get", "nodes", "-o", `jsonpath={range .items[*].status.images[*]}{.names}{"\n"}{end}`)
	if err != nil {
		return false, fmt.Errorf("list the node's images: %w", err)
	}
	return imageListed(out, image), nil
}

// imageListed reports whether image (name:tag) is among the names, given
// with or without the docker.io/library/ prefix that runtimes add.
func imageListed(names, image string) bool {
	for _, field := range strings.FieldsFunc(names, func(r rune) bool {
		return r == '[' || r == ']' || r == ',' || r == '"' || r == '\n' || r == ' '
	}) {
		if field == image || strings.HasSuffix(field, "/"+image) {
			return true
		}
	}
	return false
}

func relTo(dir, path string) string {
	if rel, err := filepath.Rel(dir, path); err == nil {
		return rel
	}
	return path
}
