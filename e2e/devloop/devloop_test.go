//go:build e2e

// Package devloop is the end-to-end suite of the hot-reload dev loop (seed
// section 7) on the project's real test cluster: the dev image, the
// Deployment of k8s/dev with its hostPath holding a copy of the source, and
// the seed's own `kubectl port-forward`, across edits of that copy.
// Run it with `make e2e-devloop` (root; the test cluster must be up).
package devloop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"scalable-app/internal/baseimage"
	"scalable-app/internal/devloop"
	"scalable-app/internal/dockerengine"
	"scalable-app/internal/sourcetree"
	"scalable-app/internal/testcluster"
)

const (
	image    = "scalable-app:dev"
	localURL = "http://127.0.0.1:8080/"
)

func TestDevLoopOnTheTestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if err := testcluster.Ready(ctx); err != nil {
		t.Fatalf("the test cluster is not ready (start it with make cluster-up): %v", err)
	}
	k := kubectl{t: t, bin: testcluster.Kubectl(), kubeconfig: testcluster.Kubeconfig(), dir: root}

	// The dev image, built as the README says and loaded into the node.
	engine, err := dockerengine.Ensure(ctx, dockerengine.Options{Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Stop() })
	if _, err := baseimage.Ensure(ctx, baseimage.Options{
		Dockerfile: filepath.Join(root, "Dockerfile"), CacheDir: baseimage.DefaultCacheDir,
		Mirror: "http://deb.debian.org/debian", Docker: "docker", GOROOT: runtime.GOROOT(), Log: testLog{t},
	}); err != nil {
		t.Fatal(err)
	}
	// BuildKit, which the Dockerfile's cache mounts need: Debian's docker.io
	// 20.10 client builds with the legacy builder unless told otherwise.
	builder, err := dockerengine.FindBuilder(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, ctx, root, builder.Env, builder.Command, "build", "--target", "dev", "-t", image, ".")
	t.Logf("docker build --target dev: %s", time.Since(start).Round(time.Second))
	if err := testcluster.LoadImage(ctx, image); err != nil {
		t.Fatalf("load %s: %v", image, err)
	}

	// A copy of the source in the node's /data/my-project.
	src := copySource(t, root)
	unmount, err := devloop.BindMount(src, devloop.MountPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unmount)

	// The test namespace and its Service, as the test environment has them,
	// unless they exist already; whatever this test creates, it removes.
	waitNamespaceGoneIfTerminating(t, ctx, k)
	if _, err := k.run(ctx, "get", "namespace", devloop.Namespace); err != nil {
		k.must(ctx, "apply", "-f", "k8s/dev/namespace.yaml")
		t.Cleanup(func() { k.run(context.Background(), "delete", "namespace", devloop.Namespace, "--wait=false") })
	}
	if _, err := k.run(ctx, "get", "service", "scalable-app", "-n", devloop.Namespace); err != nil {
		svc := testEnvService(t, ctx, k)
		k.mustStdin(ctx, svc, "apply", "-n", devloop.Namespace, "-f", "-")
		t.Cleanup(func() { k.run(context.Background(), "delete", "service", "scalable-app", "-n", devloop.Namespace) })
	}

	// The seed's steps: apply, then port-forward.
	start = time.Now()
	k.must(ctx, "apply", "-f", "k8s/dev/deployment-dev.yaml")
	t.Cleanup(func() {
		k.run(context.Background(), "delete", "deployment", devloop.Deployment, "-n", devloop.Namespace, "--wait=true", "--timeout=60s")
	})
	k.must(ctx, "rollout", "status", "deployment/"+devloop.Deployment, "-n", devloop.Namespace, "--timeout=5m")
	t.Logf("rollout complete in %s", time.Since(start).Round(time.Second))
	pod := strings.TrimSpace(k.must(ctx, "get", "pods", "-n", devloop.Namespace, "-l", "app="+devloop.Deployment, "-o", "jsonpath={.items[0].metadata.name}"))
	podIP := strings.TrimSpace(k.must(ctx, "get", "pod", pod, "-n", devloop.Namespace, "-o", "jsonpath={.status.podIP}"))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := k.run(context.Background(), "logs", pod, "-n", devloop.Namespace, "--tail=60")
			t.Logf("dev pod logs:\n%s", out)
		}
	})

	forward := exec.Command(k.bin, "port-forward", "deployment/"+devloop.Deployment, "8080:5000", "-n", devloop.Namespace)
	forward.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig)
	var fwdOut syncBuffer
	forward.Stdout, forward.Stderr = &fwdOut, &fwdOut
	if err := forward.Start(); err != nil {
		t.Fatal(err)
	}
	fwdExit := make(chan error, 1)
	go func() { fwdExit <- forward.Wait() }()
	t.Cleanup(func() {
		forward.Process.Signal(syscall.SIGTERM)
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
	if err := forward.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("kubectl port-forward (pid %d) is gone after 3 edits: %v", forward.Process.Pid, err)
	}
	t.Logf("after 3 edits the port-forward started first (pid %d) still runs", forward.Process.Pid)
	if logs, err := k.run(ctx, "logs", pod, "-n", devloop.Namespace); err == nil {
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
func waitNamespaceGoneIfTerminating(t *testing.T, ctx context.Context, k kubectl) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		phase, err := k.run(ctx, "get", "namespace", devloop.Namespace, "-o", "jsonpath={.status.phase}")
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
func neverAnEndpoint(t *testing.T, ctx context.Context, k kubectl, pod, podIP string) int {
	n := 0
	for ctx.Err() == nil {
		out, err := k.run(ctx, "get", "endpointslices", "-n", devloop.Namespace, "-o", "json")
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
func testEnvService(t *testing.T, ctx context.Context, k kubectl) string {
	out := k.must(ctx, "kustomize", "k8s/overlays/test")
	for _, doc := range strings.Split(out, "\n---\n") {
		if regexp.MustCompile(`(?m)^kind: Service$`).MatchString(doc) {
			return doc
		}
	}
	t.Fatal("k8s/overlays/test renders no Service")
	return ""
}

type kubectl struct {
	t          *testing.T
	bin        string
	kubeconfig string
	dir        string
}

func (k kubectl) run(ctx context.Context, args ...string) (string, error) {
	return k.runStdin(ctx, "", args...)
}

func (k kubectl) runStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.bin, args...)
	cmd.Dir = k.dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (k kubectl) must(ctx context.Context, args ...string) string {
	k.t.Helper()
	out, err := k.run(ctx, args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

func (k kubectl) mustStdin(ctx context.Context, stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.runStdin(ctx, stdin, args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

// run runs a command in dir with env added to the environment.
func run(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s %s: %v\n%s", strings.Join(env, " "), name, strings.Join(args, " "), err, lastLines(string(out), 30))
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
			last = fmt.Sprintf("%d %q", resp.StatusCode, lastLines(string(b), 5))
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

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// syncBuffer collects a child's output from its copying goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
