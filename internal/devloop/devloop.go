// Package devloop is `make dev`: the seed's three-terminal hot-reload
// workflow (mount the source into the node, apply the dev Deployment,
// port-forward 8080) as one command that checks its prerequisites, keeps
// the port-forward alive, streams the pod's logs and, on Ctrl-C, stops all
// it started.
package devloop

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Names fixed by k8s/dev/deployment-dev.yaml (a test checks they agree).
const (
	Namespace  = "test"
	Deployment = "scalable-app-dev"
	MountPath  = "/data/my-project" // the Deployment's hostPath
	PodPort    = 5000
)

// Options configure Run.
type Options struct {
	Backend   string // "auto" (default), "minikube" or "testcluster"
	Dir       string // source tree to mount: the repository root; default "."
	Image     string // default "scalable-app:dev"
	Rebuild   bool   // build and load the image even when the node has it
	Keep      bool   // leave the Deployment running at exit
	LocalPort int    // default 8080
	Out       io.Writer
}

// backend is a cluster the dev loop can run on.
type backend interface {
	name() string
	// check fails with a one-line hint when the cluster is not usable.
	check(ctx context.Context) error
	kubectl() []string // argv prefix of kubectl for this cluster
	env() []string     // extra environment of kubectl
	// loadImage builds the dev image and makes it available to the node.
	loadImage(ctx context.Context, dir, image string) error
	// mount makes dir visible in the node at MountPath until stop is called.
	mount(ctx context.Context, dir string) (stop func(), err error)
}

// Run runs the dev loop until ctx is cancelled (Ctrl-C), then stops what it
// started and returns nil.
func Run(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Dir == "" {
		o.Dir = "."
	}
	if o.Image == "" {
		o.Image = "scalable-app:dev"
	}
	if o.LocalPort == 0 {
		o.LocalPort = 8080
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("resolve the source directory %s: %w", o.Dir, err)
	}
	manifest := filepath.Join(dir, "k8s", "dev", "deployment-dev.yaml")
	if _, err := os.Stat(manifest); err != nil {
		return fmt.Errorf("%s not found: run from the repository root or pass --dir", manifest)
	}
	r := &runner{out: o.Out}

	b, err := pickBackend(ctx, o.Backend, r)
	if err != nil {
		return err
	}
	r.env = b.env()
	r.progress("cluster: %s", b.name())
	k := &kube{r: r, argv: b.kubectl()}

	// Prerequisites, each with what to do about it.
	if err := ensureNamespace(ctx, k, dir); err != nil {
		return err
	}
	present, err := k.nodeHasImage(ctx, o.Image)
	if err != nil {
		return err
	}
	if !present || o.Rebuild {
		if !present {
			r.progress("image %s is not in the cluster: building and loading it (first time: a few minutes)", o.Image)
		}
		if err := b.loadImage(ctx, dir, o.Image); err != nil {
			return err
		}
	} else {
		r.progress("image %s: present in the cluster (--rebuild builds it again)", o.Image)
	}
	if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(o.LocalPort)); err != nil {
		return fmt.Errorf("local port %d for the port-forward is not usable (stop what uses it or pass --port): %w", o.LocalPort, err)
	} else {
		ln.Close()
	}

	// What we start from here on is undone at exit, in reverse order.
	var undo []func()
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}()

	r.progress("mounting %s at %s in the node", dir, MountPath)
	unmount, err := b.mount(ctx, dir)
	if err != nil {
		return err
	}
	undo = append(undo, unmount)

	existed := k.exists(ctx, "deployment", Deployment)
	r.progress("applying %s", relTo(dir, manifest))
	if _, err := k.run(ctx, "apply the dev Deployment", "apply", "-f", manifest); err != nil {
		return err
	}
	if existed {
		// Its pod may hold a view of the node directory from before this
		// mount: a new pod sees the mount.
		if _, err := k.run(ctx, "restart the dev pod", "rollout", "restart", "deployment/"+Deployment, "-n", Namespace); err != nil {
			return err
		}
	}
	if !o.Keep && !existed {
		undo = append(undo, func() {
			r.progress("deleting deployment/%s (--keep leaves it running)", Deployment)
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := k.run(cctx, "delete the dev Deployment", "delete", "deployment", Deployment, "-n", Namespace, "--wait=false"); err != nil {
				r.progress("%v", err)
			}
		})
	}
	r.progress("waiting for the rollout (the pod's first build included)")
	if err := k.stream(ctx, "wait for the rollout", "rollout", "status", "deployment/"+Deployment, "-n", Namespace, "--timeout=10m"); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	helpers, cancelHelpers := context.WithCancel(ctx)
	url := fmt.Sprintf("http://localhost:%d", o.LocalPort)
	forward := &process{
		name:   "port-forward",
		r:      r,
		argv:   k.argvOf("port-forward", "deployment/"+Deployment, fmt.Sprintf("%d:%d", o.LocalPort, PodPort), "-n", Namespace),
		prefix: "[port-forward] ",
		onStart: func(ctx context.Context) {
			if waitHTTP(ctx, url, time.Minute) {
				r.progress("ready: %s serves the pod; edit and save any file under %s (Ctrl-C stops)", url, dir)
			}
		},
	}
	logs := &process{
		name:   "logs",
		r:      r,
		argv:   k.argvOf("logs", "--follow", "--tail=20", "deployment/"+Deployment, "-n", Namespace),
		prefix: "[pod] ",
	}
	forward.start(helpers)
	logs.start(helpers)
	undo = append(undo, func() {
		cancelHelpers()
		forward.wait()
		logs.wait()
	})

	<-ctx.Done()
	r.progress("stopping: port-forward, logs, mount%s (namespace %s stays)", map[bool]string{true: "", false: ", deployment"}[o.Keep || existed], Namespace)
	return nil
}

func pickBackend(ctx context.Context, name string, r *runner) (backend, error) {
	mk, tc := &minikube{r: r}, &testCluster{r: r}
	switch name {
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
		return nil, fmt.Errorf("invalid backend %q: must be auto, minikube or testcluster", name)
	}
}

func ensureNamespace(ctx context.Context, k *kube, dir string) error {
	if k.exists(ctx, "namespace", Namespace) {
		return nil
	}
	nsFile := filepath.Join(dir, "k8s", "dev", "namespace.yaml")
	k.r.progress("namespace %s does not exist: creating it from %s", Namespace, relTo(dir, nsFile))
	_, err := k.run(ctx, "create namespace "+Namespace, "apply", "-f", nsFile)
	return err
}

// kube runs kubectl against the chosen cluster.
type kube struct {
	r    *runner
	argv []string
}

func (k *kube) argvOf(args ...string) []string {
	return append(append([]string(nil), k.argv...), args...)
}

func (k *kube) run(ctx context.Context, what string, args ...string) (string, error) {
	argv := k.argvOf(args...)
	return k.r.output(ctx, what, argv[0], argv[1:]...)
}

func (k *kube) stream(ctx context.Context, what string, args ...string) error {
	argv := k.argvOf(args...)
	return k.r.stream(ctx, what, argv[0], argv[1:]...)
}

func (k *kube) exists(ctx context.Context, kind, name string) bool {
	args := []string{"get", kind, name, "-o", "name"}
	if kind != "namespace" {
		args = append(args, "-n", Namespace)
	}
	_, err := k.run(ctx, "look up "+kind, args...)
	return err == nil
}

// nodeHasImage asks the API server which images the nodes hold (kubelet
// reports them), which works the same for every container runtime.
func (k *kube) nodeHasImage(ctx context.Context, image string) (bool, error) {
	out, err := k.run(ctx, "list the node's images", "get", "nodes", "-o", `jsonpath={range .items[*].status.images[*]}{.names}{"\n"}{end}`)
	if err != nil {
		return false, err
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

// waitHTTP polls url until it answers at all (a 500 error page counts: the
// port-forward works) or the time is up.
func waitHTTP(ctx context.Context, url string, limit time.Duration) bool {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
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
