//go:build e2e

// Package devloop is the end-to-end suite of the hot-reload dev loop (seed
// section 7) on the project's real test cluster: the dev image, the
// Deployment of k8s/dev with its hostPath holding a copy of the source, and
// the seed's own `kubectl port-forward`, across edits of that copy.
// Run it with `make e2e-devloop` (root; the test cluster must be up).
package devloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"scalable-app/tools/dev/devloop"
	"scalable-app/tools/internal/baseimage"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
	"scalable-app/tools/internal/kubectl"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/internal/sourcetree"
	"scalable-app/tools/test/testcluster"
)

const (
	image    = "scalable-app:dev"
	localURL = "http://127.0.0.1:8080/"
)

func TestDevLoopOnTheTestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	run := command.New(command.OS{}, testLog{t})
	// A runner of its own: the cluster sends its runner's log to its state
	// directory while it works.
	cluster := testcluster.New(testcluster.ConfigFromEnv(os.Getenv), command.New(command.OS{}, nil), testLog{t}, root)
	if err := cluster.Status(ctx); err != nil {
		t.Fatalf("the test cluster is not ready (start it with make cluster-up): %v", err)
	}
	cfg := cluster.Config()
	k := kubectl.Kubectl{Run: run, Bin: cfg.KubectlPath(), Kubeconfig: cfg.KubeconfigPath(), Dir: root}

	// The dev image, built as the README says and loaded into the node.
	engine, err := dockerengine.Ensure(ctx, run, dockerengine.Options{Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Stop() })
	if _, err := baseimage.Ensure(ctx, baseimage.Options{
		Run: command.New(command.OS{}, testLog{t}), Host: baseimage.ThisHost(),
		Dockerfile: filepath.Join(root, "Dockerfile"), CacheDir: baseimage.DefaultCacheDir,
		Mirror: "http://deb.debian.org/debian", Docker: "docker", GOROOT: runtime.GOROOT(), Log: testLog{t},
	}); err != nil {
		t.Fatal(err)
	}
	// BuildKit, which the Dockerfile's cache mounts need: Debian's docker.io
	// 20.10 client builds with the legacy builder unless told otherwise.
	builder, err := dockerengine.FindBuilder(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	build := &command.Tail{Max: 64 << 10}
	if _, err := run.Exec(ctx, command.Cmd{What: "build the dev image", Name: builder.Command, Env: builder.Env, Dir: root,
		Args: []string{"build", "--target", "dev", "-t", image, "."}, Stdout: build, Stderr: build}); err != nil {
		t.Fatalf("%v\n%s", err, command.LastLines(build.String(), 30))
	}
	t.Logf("docker build --target dev: %s", time.Since(start).Round(time.Second))
	if err := cluster.Load(ctx, image); err != nil {
		t.Fatalf("load %s: %v", image, err)
	}

	// A copy of the source in the node's /data/my-project, which is removed
	// again at the end when this test created it.
	src := copySource(t, root)
	if _, err := os.Stat(devloop.MountPath); errors.Is(err, fs.ErrNotExist) {
		// Registered first, so it runs after the unmount.
		t.Cleanup(func() {
			if _, err := os.Stat(devloop.MountPath); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s, created for the mount, is left behind (%v)", devloop.MountPath, err)
			}
		})
	}
	unmount, err := devloop.BindMount(src, devloop.MountPath, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unmount)

	// The test namespace and its Service, as the test environment has them,
	// unless they exist already; whatever this test creates, it removes.
	waitNamespaceGoneIfTerminating(t, ctx, k)
	if _, err := k.Output(ctx, "get", "namespace", devloop.Namespace); err != nil {
		must(t)(k.Output(ctx, "apply", "-f", "k8s/dev/namespace.yaml"))
		t.Cleanup(func() {
			_, _ = k.Output(context.Background(), "delete", "namespace", devloop.Namespace, "--wait=false")
		})
	}
	if _, err := k.Output(ctx, "get", "service", "scalable-app", "-n", devloop.Namespace); err != nil {
		svc := testEnvService(t, ctx, k)
		must(t)(k.OutputStdin(ctx, strings.NewReader(svc), "apply", "-n", devloop.Namespace, "-f", "-"))
		t.Cleanup(func() {
			_, _ = k.Output(context.Background(), "delete", "service", "scalable-app", "-n", devloop.Namespace)
		})
	}

	// The seed's steps: apply, then port-forward.
	start = time.Now()
	must(t)(k.Output(ctx, "apply", "-f", "k8s/dev/deployment-dev.yaml"))
	t.Cleanup(func() {
		_, _ = k.Output(context.Background(), "delete", "deployment", devloop.Deployment, "-n", devloop.Namespace, "--wait=true", "--timeout=60s")
	})
	must(t)(k.Output(ctx, "rollout", "status", "deployment/"+devloop.Deployment, "-n", devloop.Namespace, "--timeout=5m"))
	t.Logf("rollout complete in %s", time.Since(start).Round(time.Second))
	pod := strings.TrimSpace(must(t)(k.Output(ctx, "get", "pods", "-n", devloop.Namespace, "-l", "app="+devloop.Deployment, "-o", "jsonpath={.items[0].metadata.name}")))
	podIP := strings.TrimSpace(must(t)(k.Output(ctx, "get", "pod", pod, "-n", devloop.Namespace, "-o", "jsonpath={.status.podIP}")))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := k.Output(context.Background(), "logs", pod, "-n", devloop.Namespace, "--tail=60")
			t.Logf("dev pod logs:\n%s", out)
		}
	})

	// The seed's own port-forward, one process for the whole test.
	fwdOut := &command.Tail{Max: 64 << 10}
	fwdCmd := k.Command("port-forward", "deployment/"+devloop.Deployment, "8080:5000", "-n", devloop.Namespace)
	fwdCmd.What, fwdCmd.Stdout, fwdCmd.Stderr = "port-forward to the dev pod", fwdOut, fwdOut
	forward, err := run.Start(ctx, fwdCmd)
	if err != nil {
		t.Fatal(err)
	}
	fwdExit := make(chan error, 1)
	go func() { fwdExit <- forward.Wait() }()
	t.Cleanup(func() {
		_ = forward.Signal(syscall.SIGTERM)
		<-fwdExit
	})

	// The dev pod must never be an endpoint of the test environment's Service.
	watchCtx, stopWatch := context.WithCancel(ctx)
	endpointsChecked := make(chan int, 1)
	go func() { endpointsChecked <- neverAnEndpoint(t, watchCtx, k, pod, podIP) }()

	body := waitBody(t, localURL, "Hello from Kubernetes", 3*time.Minute)
	t.Logf("localhost:8080 through port-forward: %q", body)

	for i := 1; i <= 3; i++ {
		text := fmt.Sprintf("Hello from the dev pod, edit %d", i)
		saved := time.Now()
		setGreeting(t, src, text)
		waitBody(t, localURL, text, 2*time.Minute)
		t.Logf("edit %d served through the same port-forward %s after the save", i, time.Since(saved).Round(10*time.Millisecond))
		select {
		case err := <-fwdExit:
			t.Fatalf("kubectl port-forward exited after edit %d: %v\n%s", i, err, fwdOut.String())
		default:
		}
	}
	if err := forward.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("kubectl port-forward (pid %d) is gone after 3 edits: %v", forward.Pid(), err)
	}
	t.Logf("after 3 edits the port-forward started first (pid %d) still runs", forward.Pid())
	if logs, err := k.Output(ctx, "logs", pod, "-n", devloop.Namespace); err == nil {
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "msg=reloaded") || strings.Contains(line, "msg=started") {
				t.Logf("pod: %s", line)
			}
		}
	}

	// A compile error is shown through the same port-forward, and a fix heals it.
	setGreetingExpr(t, src, "undefinedInTheDevPod")
	page := waitStatus(t, localURL, http.StatusInternalServerError, "undefined: undefinedInTheDevPod", 2*time.Minute)
	t.Logf("broken edit: 500 page with the compiler's message (%d bytes)", len(page))
	setGreeting(t, src, "Hello from Kubernetes")
	waitBody(t, localURL, "Hello from Kubernetes", 2*time.Minute)

	stopWatch()
	t.Logf("the test Service's EndpointSlices were checked %d times: never the dev pod", <-endpointsChecked)
}

// waitNamespaceGoneIfTerminating waits out a deletion of the namespace in
// progress (another suite's cleanup), after which this test creates it.
func waitNamespaceGoneIfTerminating(t *testing.T, ctx context.Context, k kubectl.Kubectl) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		phase, err := k.Output(ctx, "get", "namespace", devloop.Namespace, "-o", "jsonpath={.status.phase}")
		if err != nil || strings.TrimSpace(phase) != "Terminating" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s still terminating after 3 minutes", devloop.Namespace)
		}
		time.Sleep(time.Second)
	}
}

// neverAnEndpoint polls the EndpointSlices of the namespace until ctx ends
// and fails the test if one lists the dev pod. It returns how many checks ran.
func neverAnEndpoint(t *testing.T, ctx context.Context, k kubectl.Kubectl, pod, podIP string) int {
	n := 0
	for ctx.Err() == nil {
		out, err := k.Output(ctx, "get", "endpointslices", "-n", devloop.Namespace, "-o", "json")
		if err == nil {
			var list struct {
				Items []struct {
					Metadata  struct{ Name string }
					Endpoints []struct {
						Addresses []string
						TargetRef *struct{ Name string } `json:"targetRef"`
					}
				}
			}
			if err := json.Unmarshal([]byte(out), &list); err != nil {
				t.Errorf("endpointslices: %v", err)
				return n
			}
			for _, s := range list.Items {
				for _, e := range s.Endpoints {
					if (e.TargetRef != nil && e.TargetRef.Name == pod) || slices.Contains(e.Addresses, podIP) {
						t.Errorf("EndpointSlice %s lists the dev pod %s (%s)", s.Metadata.Name, pod, podIP)
						return n
					}
				}
			}
			n++
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return n
}

// testEnvService is the Service of the test environment as its overlay
// renders it.
func testEnvService(t *testing.T, ctx context.Context, k kubectl.Kubectl) string {
	out := must(t)(k.Output(ctx, "kustomize", "k8s/overlays/test"))
	for _, doc := range strings.Split(out, "\n---\n") {
		if regexp.MustCompile(`(?m)^kind: Service$`).MatchString(doc) {
			return doc
		}
	}
	t.Fatal("k8s/overlays/test renders no Service")
	return ""
}

// must fails the test on a command's error and returns its output:
// must(t)(k.Output(...)).
func must(t *testing.T) func(string, error) string {
	return func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func waitBody(t *testing.T, url, want string, timeout time.Duration) string {
	t.Helper()
	return waitStatus(t, url, http.StatusOK, want, timeout)
}

func waitStatus(t *testing.T, url string, status int, want string, timeout time.Duration) string {
	t.Helper()
	// A new connection per request, as curl makes: a keep-alive connection
	// through kubectl port-forward outlives the process it reached by up to
	// a second, and would measure kubectl rather than the reload.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == status && strings.Contains(string(b), want) {
				return string(b)
			}
			last = fmt.Sprintf("%d %q", resp.StatusCode, command.LastLines(string(b), 5))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d with %q at %s within %s; last: %s", status, want, url, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func setGreeting(t *testing.T, src, text string) {
	t.Helper()
	if err := sourcetree.SetGreeting(src, text); err != nil {
		t.Fatal(err)
	}
}

// setGreetingExpr edits the greeting constant as an editor would.
func setGreetingExpr(t *testing.T, src, expr string) {
	t.Helper()
	if err := sourcetree.SetGreetingExpr(src, expr); err != nil {
		t.Fatal(err)
	}
}

// copySource copies what builds the app into a directory the dev pod's user
// can read.
func copySource(t *testing.T, root string) string {
	t.Helper()
	dst, err := os.MkdirTemp("", "devloop-src-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dst) })
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sourcetree.Copy(root, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
