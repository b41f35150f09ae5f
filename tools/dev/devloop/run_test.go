package devloop

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/kubectl"
)

// cluster scripts the answers of a minikube cluster to the dev loop's
// commands, for command.Fake.
type cluster struct {
	mu            sync.Mutex
	namespace     bool   // the test namespace exists
	deployment    bool   // the dev Deployment exists
	getDeployment error  // the answer to `kubectl get deployment`, when not nil
	applyAs       string // what `kubectl apply` reports for the Deployment
	pods          string // `kubectl get pods -o json`
	previousLog   string // `kubectl logs --previous`
	rollout       string // `kubectl rollout status`; rolledOut when empty
}

const rolledOut = `deployment "scalable-app-dev" successfully rolled out`

const healthyPods = `{"items":[{"metadata":{"name":"scalable-app-dev-abc"},"status":{"containerStatuses":[
 {"name":"scalable-app","ready":true,"restartCount":0,"state":{"running":{}}}]}}]}`

func (c *cluster) respond(cmd command.Cmd) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := cmd.Line()
	switch {
	case strings.HasPrefix(line, "minikube status"):
		return "Running/Running/Running", nil
	case strings.HasPrefix(line, "kubectl config view"):
		return "apiVersion: v1\nkind: Config\n", nil
	case strings.HasPrefix(line, "kubectl get namespace test"):
		if c.namespace {
			return "namespace/test\n", nil
		}
		return "", nil
	case strings.HasPrefix(line, "kubectl apply -f k8s/dev/namespace.yaml"):
		c.namespace = true
		return "namespace/test created\n", nil
	case strings.HasPrefix(line, "kubectl get nodes"):
		return `["docker.io/library/scalable-app:dev"]` + "\n", nil
	case strings.HasPrefix(line, "kubectl get deployment scalable-app-dev"):
		if c.getDeployment != nil {
			return "", c.getDeployment
		}
		if c.deployment {
			return "deployment.apps/scalable-app-dev\n", nil
		}
		return "", nil
	case strings.HasPrefix(line, "kubectl apply -f k8s/dev/deployment-dev.yaml"):
		c.deployment = true
		return "deployment.apps/scalable-app-dev " + c.applyAs + "\n", nil
	case strings.HasPrefix(line, "kubectl get pods"):
		return c.pods, nil
	case strings.HasPrefix(line, "kubectl rollout status"):
		if c.rollout != "" {
			return c.rollout + "\n", nil
		}
		return rolledOut + "\n", nil
	case strings.HasPrefix(line, "kubectl get events"):
		return "LAST SEEN   TYPE      REASON    OBJECT                    MESSAGE\n" +
			"5s          Warning   BackOff   pod/scalable-app-dev-abc  Back-off restarting failed container\n", nil
	case strings.HasPrefix(line, "kubectl logs scalable-app-dev-abc") && strings.Contains(line, "--previous"):
		return c.previousLog, nil
	}
	return "", nil
}

// devLoop is one run of Run against a scripted cluster.
type devLoop struct {
	fake *command.Fake
	out  *command.Tail
	dir  string
	errc chan error
	stop context.CancelFunc
}

// startDevLoop runs the dev loop on minikube with c's answers.
func startDevLoop(t *testing.T, c *cluster, edit func(*Options)) *devLoop {
	t.Helper()
	d := &devLoop{fake: &command.Fake{Respond: c.respond}, out: &command.Tail{}, dir: sourceTree(t), errc: make(chan error, 1)}
	o := DefaultOptions()
	o.Backend, o.Dir, o.Out = "minikube", d.dir, d.out
	o.LocalPort = freePort(t)
	o.PollInterval = 5 * time.Millisecond
	if edit != nil {
		edit(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	t.Cleanup(cancel)
	go func() { d.errc <- Run(ctx, command.New(d.fake, nil), o) }()
	return d
}

// waitServing waits until the mount, the port-forward and the logs run.
func (d *devLoop) waitServing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(d.fake.Running()) < 3 {
		select {
		case err := <-d.errc:
			t.Fatalf("Run ended before serving: %v\n%s", err, d.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dev loop did not start its helpers; commands:\n%s", strings.Join(d.fake.Lines(), "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// end waits for Run to return (after d.stop, or on its own) and checks
// that no child outlives it.
func (d *devLoop) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.errc:
		if running := d.fake.Running(); len(running) > 0 {
			t.Errorf("%d children outlive the dev loop, e.g. %s", len(running), running[0].Cmd.Line())
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return; commands:\n%s", strings.Join(d.fake.Lines(), "\n"))
		return nil
	}
}

func (d *devLoop) ran(prefix string) bool {
	_, ok := d.fake.Find(prefix)
	return ok
}

const deleteDeployment = "kubectl delete deployment scalable-app-dev"

func TestCreatesWhatIsMissingAndDeletesOnlyThatOnStop(t *testing.T) {
	c := &cluster{applyAs: "created", pods: healthyPods}
	d := startDevLoop(t, c, nil)
	d.waitServing(t)
	for _, p := range d.fake.Running() {
		if !p.Cmd.OwnGroup {
			t.Errorf("%s runs in the dev loop's process group: the terminal's signals would reach it first", p.Cmd.Line())
		}
	}
	started := map[string]bool{}
	for _, p := range d.fake.Running() {
		started[strings.Join(p.Cmd.Args[:1], "")] = true
	}
	if !started["mount"] || !started["port-forward"] || !started["logs"] {
		t.Errorf("started %v, want the mount, the port-forward and the logs", started)
	}
	d.stop() // what SIGINT, SIGTERM and SIGHUP do in the main
	if err := d.end(t); err != nil {
		t.Fatalf("a stopped dev loop returned %v", err)
	}
	if !d.ran("kubectl apply -f k8s/dev/namespace.yaml") {
		t.Error("the missing namespace was not created")
	}
	if !d.ran(deleteDeployment) {
		t.Errorf("the Deployment this run created was not deleted on stop:\n%s", strings.Join(d.fake.Lines(), "\n"))
	}
	if d.ran("kubectl delete namespace") {
		t.Error("the namespace was deleted: it stays")
	}
	if d.ran("kubectl rollout restart") {
		t.Error("a Deployment this run created was restarted")
	}
	// The Deployment goes before the mount its pod reads.
	lines := d.fake.Lines()
	del := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, deleteDeployment) })
	apply := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "kubectl apply -f k8s/dev/deployment-dev.yaml") })
	mount := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "minikube mount") })
	if !(mount < apply && apply < del) {
		t.Errorf("order: mount %d, apply %d, delete %d; want mount, apply, then delete:\n%s", mount, apply, del, strings.Join(lines, "\n"))
	}
	for _, call := range d.fake.Calls() {
		// Only the copy of the minikube context is read from the user's kubeconfig.
		if call.Name == "kubectl" && call.Args[0] != "config" && !slices.ContainsFunc(call.Env, func(e string) bool { return strings.HasPrefix(e, "KUBECONFIG=") }) {
			t.Errorf("%s runs without the minikube kubeconfig", call.Line())
			break
		}
	}
}

func TestLeavesADeploymentThatExistedBefore(t *testing.T) {
	c := &cluster{namespace: true, deployment: true, applyAs: "configured", pods: healthyPods}
	d := startDevLoop(t, c, nil)
	d.waitServing(t)
	d.stop()
	if err := d.end(t); err != nil {
		t.Fatal(err)
	}
	if d.ran(deleteDeployment) {
		t.Error("a Deployment that existed before the dev loop was deleted")
	}
	if !d.ran("kubectl rollout restart deployment/scalable-app-dev") {
		t.Error("the pre-existing Deployment's pod was not restarted to see the new mount")
	}
	if d.ran("kubectl apply -f k8s/dev/namespace.yaml") {
		t.Error("an existing namespace was applied again")
	}
}

// A Deployment absent at the check but reported "configured" by apply was
// created by someone else meanwhile: not this run's to delete.
func TestLeavesADeploymentItDidNotVerifiablyCreate(t *testing.T) {
	c := &cluster{namespace: true, applyAs: "configured", pods: healthyPods}
	d := startDevLoop(t, c, nil)
	d.waitServing(t)
	d.stop()
	if err := d.end(t); err != nil {
		t.Fatal(err)
	}
	if d.ran(deleteDeployment) {
		t.Error("deleted a Deployment that apply did not report as created")
	}
}

func TestKeepLeavesTheCreatedDeployment(t *testing.T) {
	c := &cluster{namespace: true, applyAs: "created", pods: healthyPods}
	d := startDevLoop(t, c, func(o *Options) { o.Keep = true })
	d.waitServing(t)
	d.stop()
	if err := d.end(t); err != nil {
		t.Fatal(err)
	}
	if d.ran(deleteDeployment) {
		t.Error("--keep deleted the Deployment")
	}
}

// kubectl failing for another reason than NotFound (the API server down,
// forbidden) must not read as "absent": the dev loop stops, changing nothing.
func TestAFailedLookupStopsWithoutDeletingAnything(t *testing.T) {
	c := &cluster{namespace: true, deployment: true, applyAs: "configured", pods: healthyPods,
		getDeployment: errors.New("The connection to the server 192.168.49.2:8443 was refused")}
	d := startDevLoop(t, c, nil)
	err := d.end(t)
	if err == nil || !strings.Contains(err.Error(), "cannot tell whether deployment scalable-app-dev exists") ||
		!strings.Contains(err.Error(), "was refused") {
		t.Fatalf("want an error naming the failed lookup and kubectl's message, got %v", err)
	}
	for _, forbidden := range []string{"kubectl apply -f k8s/dev/deployment-dev.yaml", "kubectl delete", "kubectl rollout"} {
		if d.ran(forbidden) {
			t.Errorf("after a failed lookup the dev loop ran %q", forbidden)
		}
	}
}

func TestACrashLoopingPodIsReportedWithItsLogAndCleanedUp(t *testing.T) {
	c := &cluster{namespace: true, applyAs: "created",
		pods: `{"items":[{"metadata":{"name":"scalable-app-dev-abc"},"status":{"containerStatuses":[
 {"name":"scalable-app","ready":false,"restartCount":3,
  "state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 40s restarting failed container"}},
  "lastState":{"terminated":{"exitCode":1,"reason":"Error"}}}]}}]}`,
		previousLog: "hotreload: scan /app: open /app: permission denied\n"}
	d := startDevLoop(t, c, func(o *Options) { o.RolloutTimeout = time.Hour })
	err := d.end(t)
	if err == nil {
		t.Fatal("a crash-looping pod did not fail the dev loop")
	}
	for _, want := range []string{"scalable-app-dev-abc", "CrashLoopBackOff", "chmod -R a+rX"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	out := d.out.String()
	for _, want := range []string{"CrashLoopBackOff", "Back-off restarting failed container", "hotreload: scan /app: open /app: permission denied"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if !d.ran("kubectl logs scalable-app-dev-abc -n test -c scalable-app --tail=20 --previous") {
		t.Errorf("the crashed container's previous log was not read:\n%s", strings.Join(d.fake.Lines(), "\n"))
	}
	if d.ran("kubectl port-forward") {
		t.Error("port-forward started to a failing pod")
	}
	if !d.ran(deleteDeployment) {
		t.Error("the Deployment this run created was left behind after the failure")
	}
}

func TestARolloutThatNeverEndsTimesOutAndCleansUp(t *testing.T) {
	c := &cluster{namespace: true, applyAs: "created", pods: `{"items":[]}`,
		rollout: `Waiting for deployment "scalable-app-dev" rollout to finish: 0 of 1 updated replicas are available...`}
	d := startDevLoop(t, c, func(o *Options) { o.RolloutTimeout = 50 * time.Millisecond })
	err := d.end(t)
	if err == nil || !strings.Contains(err.Error(), "has not rolled out after 50ms") || !strings.Contains(err.Error(), "0 of 1 updated") {
		t.Fatalf("want the timeout with kubectl's last status, got %v", err)
	}
	if !strings.Contains(d.out.String(), "0 of 1 updated replicas") {
		t.Errorf("the rollout's status was not shown while waiting:\n%s", d.out)
	}
	if !d.ran(deleteDeployment) {
		t.Error("the Deployment this run created was left behind after the timeout")
	}
}

// With stdout gone (`make dev | tee log`, tee killed) the cleanup still
// runs, and says so on stderr.
func TestCleansUpWithABrokenStdout(t *testing.T) {
	stderr := &command.Tail{}
	c := &cluster{namespace: true, applyAs: "created", pods: healthyPods}
	d := startDevLoop(t, c, func(o *Options) { o.Out = Console(brokenPipe{}, stderr) })
	d.waitServing(t)
	d.stop()
	if err := d.end(t); err != nil {
		t.Fatal(err)
	}
	if !d.ran(deleteDeployment) {
		t.Error("no cleanup with a broken stdout")
	}
	if !strings.Contains(stderr.String(), "deleting deployment/scalable-app-dev") {
		t.Errorf("stderr lacks the cleanup's progress:\n%s", stderr)
	}
}

type brokenPipe struct{}

func (brokenPipe) Write([]byte) (int, error) { return 0, errors.New("write /dev/stdout: broken pipe") }

func TestUnreadableSourceIsReportedBeforeAnything(t *testing.T) {
	if os.Geteuid() == PodUID {
		t.Skip("running as the pod's user")
	}
	d := startDevLoop(t, &cluster{}, func(o *Options) {
		if err := os.Chmod(o.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
	})
	err := d.end(t)
	if err == nil || !strings.Contains(err.Error(), "uid 10001") || !strings.Contains(err.Error(), "chmod o+rx "+d.dir) {
		t.Fatalf("want the uid and the fix, got %v", err)
	}
	if calls := d.fake.Lines(); len(calls) > 0 {
		t.Errorf("commands ran before the check: %q", calls)
	}
}

func TestPodFailure(t *testing.T) {
	for name, tc := range map[string]struct {
		status string
		want   string // "" for not failing
	}{
		"running":       {`"containerStatuses":[{"name":"app","ready":true,"state":{"running":{}}}]`, ""},
		"creating":      {`"containerStatuses":[{"name":"app","state":{"waiting":{"reason":"ContainerCreating"}}}]`, ""},
		"image pull":    {`"containerStatuses":[{"name":"app","state":{"waiting":{"reason":"ImagePullBackOff"}}}]`, "ImagePullBackOff"},
		"config error":  {`"containerStatuses":[{"name":"app","state":{"waiting":{"reason":"CreateContainerConfigError","message":"secret x not found"}}}]`, "secret x not found"},
		"init crash":    {`"initContainerStatuses":[{"name":"seed-gocache","state":{"terminated":{"exitCode":1,"reason":"Error"}}}]`, "container seed-gocache: exited with code 1"},
		"restarted":     {`"containerStatuses":[{"name":"app","restartCount":1,"state":{"running":{}},"lastState":{"terminated":{"exitCode":2,"reason":"Error"}}}]`, "1 restarts, last exit code 2"},
		"recovered":     {`"containerStatuses":[{"name":"app","ready":true,"restartCount":1,"state":{"running":{}},"lastState":{"terminated":{"exitCode":2}}}]`, ""},
		"init finished": {`"initContainerStatuses":[{"name":"seed-gocache","state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			l := &loop{k: kubectlAnswering(`{"items":[{"metadata":{"name":"p"},"status":{` + tc.status + `}}]}`)}
			pods, err := l.devPods(context.Background())
			if err != nil || len(pods) != 1 {
				t.Fatalf("devPods = %v, %v", pods, err)
			}
			f, failing := pods[0].failure()
			if failing != (tc.want != "") || !strings.Contains(f.String(), tc.want) {
				t.Fatalf("failure() = %q, %v; want %q", f, failing, tc.want)
			}
		})
	}
	deleted := pod{}
	deleted.Metadata.DeletionTimestamp = "2026-01-01T00:00:00Z"
	deleted.Status.ContainerStatuses = []containerStatus{{Name: "app"}}
	deleted.Status.ContainerStatuses[0].State.Waiting = &struct{ Reason, Message string }{Reason: "CrashLoopBackOff"}
	if _, failing := deleted.failure(); failing {
		t.Error("a pod being deleted (the one a restart replaces) counts as failing")
	}
}

func TestAutoFallsBackToTheTestClusterThroughItsCLI(t *testing.T) {
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		switch c.Line() {
		case "minikube status --format={{.Host}}/{{.Kubelet}}/{{.APIServer}}":
			return "", &exec.Error{Name: "minikube", Err: exec.ErrNotFound}
		case "/opt/bin/testcluster status":
			return "cluster: up\n", nil
		case "/opt/bin/testcluster kubeconfig":
			return "/var/lib/tc/kubeconfig\n", nil
		case "/opt/bin/testcluster env":
			return "export KUBECONFIG=/var/lib/tc/kubeconfig\nexport PATH=/var/lib/tc/bin:$PATH\nexport INGRESS_ADDR=127.0.0.1:8081\n", nil
		}
		return "", nil
	}}
	l := &loop{o: Options{Backend: "auto", Testcluster: "/opt/bin/testcluster"}, run: command.New(fake, nil)}
	b, err := pickBackend(context.Background(), l, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*testCluster); !ok || !strings.Contains(b.name(), "test cluster") {
		t.Fatalf("picked %s, want the test cluster", b.name())
	}
	k := b.kubectl()
	if k.Bin != "/var/lib/tc/bin/kubectl" || k.Kubeconfig != "/var/lib/tc/kubeconfig" {
		t.Fatalf("kubectl %q with kubeconfig %q, want the cluster's own from its CLI", k.Bin, k.Kubeconfig)
	}
}

func TestTheTestClusterCLIMissingSaysWhereItIsLooked(t *testing.T) {
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		return "", &exec.Error{Name: c.Name, Err: exec.ErrNotFound}
	}}
	l := &loop{o: Options{Backend: "testcluster", Testcluster: "testcluster"}, run: command.New(fake, nil)}
	_, err := pickBackend(context.Background(), l, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "--testcluster") {
		t.Fatalf("want a hint at --testcluster, got %v", err)
	}
}

func TestFirstPathEntry(t *testing.T) {
	for env, want := range map[string]string{
		"export KUBECONFIG=/s/kubeconfig\nexport PATH=/s/bin:$PATH\n": "/s/bin",
		`export PATH="/s p/bin:$PATH"`:                                "/s p/bin",
		"export PATH='/q/bin':$PATH":                                  "/q/bin",
		"export KUBECONFIG=/s/kubeconfig\n":                           "",
	} {
		got, err := firstPathEntry(env)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("firstPathEntry(%q) = %q, %v; want %q", env, got, err, want)
		}
	}
}

func TestConsoleFallsBackToStderr(t *testing.T) {
	stderr := &command.Tail{}
	w := Console(brokenPipe{}, stderr)
	for _, s := range []string{"one\n", "two\n"} {
		if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v: a broken stdout must not fail the writer", s, n, err)
		}
	}
	if stderr.String() != "one\ntwo\n" {
		t.Fatalf("stderr got %q", stderr)
	}
}

func TestAppliedAs(t *testing.T) {
	out := "namespace/test unchanged\ndeployment.apps/scalable-app-dev created\n"
	if got := appliedAs(out, "deployment.apps/scalable-app-dev"); got != "created" {
		t.Errorf("appliedAs = %q, want created", got)
	}
	if got := appliedAs(out, "deployment.apps/other"); got != "" {
		t.Errorf("appliedAs of an absent object = %q", got)
	}
}

func kubectlAnswering(out string) kubectl.Kubectl {
	return kubectl.Kubectl{Run: command.New(&command.Fake{Respond: func(command.Cmd) (string, error) { return out, nil }}, nil)}
}

// sourceTree is a minimal checkout, readable by the pod's user.
func sourceTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":                       "module scalable-app\n",
		"main.go":                      "package main\n",
		"k8s/dev/deployment-dev.yaml":  "kind: Deployment\n",
		"k8s/dev/namespace.yaml":       "kind: Namespace\n",
		"internal/server/server.go":    "package server\n",
		".git/objects/secret-and-0700": "",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Version control is not scanned by the reloader: no need to read it.
	if err := os.Chmod(filepath.Join(dir, ".git", "objects"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
