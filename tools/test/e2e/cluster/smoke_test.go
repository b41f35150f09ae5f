//go:build e2e

// Package cluster is the smoke suite of the test cluster harness
// (cmd/testcluster): it starts the cluster, runs a pod from a locally built
// image, reaches it through kubectl port-forward and through the ingress
// controller, restarts it with a rollout, kills every cluster process and
// recovers, tears the cluster down checking that nothing of it is left, and
// starts it again.
//
// The stages build on each other, so they are the subtests of one
// TestSmoke, run in the fixed order of its table. One stage can be run
// alone (go test -tags e2e -run 'TestSmoke/ingress' ./test/e2e/cluster)
// when the cluster already holds what it needs; a stage whose prerequisite
// failed in this run fails at once and names it.
//
//	make cluster-test   (root; leaves the cluster up)
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/dockerengine"
	"scalable-app/tools/internal/kubectl"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/test/testcluster"
	"scalable-app/tools/test/testcluster/network"
	"scalable-app/tools/test/testcluster/proc"
)

const (
	namespace = "testcluster-smoke"
	image     = "testcluster-smoke-hello:latest"
	greeting  = "hello from the test cluster"
	// The smoke Ingress takes a path of its own on scalable.local, so it
	// never competes with another suite's Ingress for the same host.
	ingressPath = "/testcluster-smoke"
)

var (
	repoRoot string
	harness  string // the testcluster binary, built once
	run      = command.New(command.OS{}, nil)
	cfg      = testcluster.ConfigFromEnv(os.Getenv)
	cluster  = testcluster.New(cfg, run, io.Discard, "")
	kube     kubectl.Kubectl
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the test cluster smoke suite needs root: it starts and stops the cluster (run as root: make cluster-test)")
		os.Exit(1)
	}
	var err error
	if repoRoot, err = repo.Root(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "testcluster-smoke-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kube = kubectl.Kubectl{Run: run, Bin: cfg.KubectlPath(), Kubeconfig: cfg.KubeconfigPath(), Dir: repoRoot}
	harness = filepath.Join(dir, "testcluster")
	_, err = run.Exec(context.Background(), command.Cmd{
		What: "build cmd/testcluster", Name: "go", Args: []string{"build", "-o", harness, "./cmd/testcluster"},
		Dir: filepath.Join(repoRoot, "tools"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runHarness runs a testcluster subcommand and returns its output.
func runHarness(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	_, err := run.Exec(ctx, command.Cmd{
		What: "testcluster " + args[0], Name: harness, Args: args, Dir: repoRoot,
		Stdout: &out, Stderr: &out,
	})
	t.Logf("testcluster %s:\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func kubectlT(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	out, err := kube.Output(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually polls check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// get fetches url with the given Host header and returns status and body.
func get(url, host string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func expectGreeting(url, host string) error {
	status, body, err := get(url, host)
	if err != nil {
		return err
	}
	if status != http.StatusOK || !strings.HasPrefix(body, greeting) {
		return fmt.Errorf("GET %s (Host %s): %d %q", url, host, status, body)
	}
	return nil
}

func ingressURL() string { return "http://" + cfg.IngressAddr() + ingressPath }

// stage is one step of the smoke suite.
type stage struct {
	name  string
	needs []string // stages that must not have failed in this run
	run   func(t *testing.T)
}

// TestSmoke runs the stages in this order: each builds on the ones before.
func TestSmoke(t *testing.T) {
	stages := []stage{
		{"up", nil, testUp},
		{"load", []string{"up"}, testLoadLocallyBuiltImage},
		{"pod", []string{"load"}, testPodFromLocalImageReady},
		{"port-forward", []string{"pod"}, testPortForward},
		{"ingress", []string{"pod"}, testIngressClassNginxAndNoClass},
		{"rollout-restart", []string{"ingress"}, testRolloutRestart},
		{"kill-9", []string{"rollout-restart"}, testUpRecoversAfterKill9},
		{"down", []string{"up"}, testDownLeavesNothing},
		{"up-again", nil, testUpAgain},
	}
	failed := map[string]bool{}
	for _, s := range stages {
		ok := t.Run(s.name, func(t *testing.T) {
			for _, n := range s.needs {
				if failed[n] {
					t.Fatalf("needs stage %q, which failed in this run", n)
				}
			}
			s.run(t)
		})
		if !ok {
			failed[s.name] = true
		}
	}
}

// requireWorkload fails a stage run alone on a cluster without the smoke
// workload, saying which stages make it.
func requireWorkload(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kube.Output(ctx, "-n", namespace, "get", "deployment/smoke-hello"); err != nil {
		t.Fatalf("this stage needs the smoke workload (stages up, load and pod; run TestSmoke whole): %v", err)
	}
}

func testUp(t *testing.T) {
	start := time.Now()
	runHarness(t, 40*time.Minute, "up")
	t.Logf("cluster-up (cluster found up, or started) took %s", time.Since(start).Round(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.Ready(ctx); err != nil {
		t.Fatalf("after up, the cluster is not ready: %v", err)
	}
	if out := runHarness(t, time.Minute, "up"); !strings.Contains(out, "already up") {
		t.Fatalf("a second up should say the cluster is already up, said:\n%s", out)
	}
	out := kubectlT(t, "version", "-o", "json")
	var v struct {
		Client struct{ GitVersion string } `json:"clientVersion"`
		Server struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, out)
	}
	want := cfg.KubernetesVersion
	if v.Client.GitVersion != want || v.Server.GitVersion != want {
		t.Fatalf("kubectl %q against server %q, want %s for both", v.Client.GitVersion, v.Server.GitVersion, want)
	}
}

func testLoadLocallyBuiltImage(t *testing.T) {
	ctx := context.Background()
	engine, err := dockerengine.Ensure(ctx, run, dockerengine.Options{Log: os.Stderr})
	if err != nil {
		t.Fatalf("docker engine: %v", err)
	}
	t.Cleanup(func() { engine.Stop() })
	dir := t.TempDir()
	_, err = run.Exec(ctx, command.Cmd{
		What: "build the smoke workload", Name: "go",
		Args: []string{"build", "-trimpath", "-o", filepath.Join(dir, "hello"), "./test/e2e/cluster/testdata/hello"},
		Dir:  filepath.Join(repoRoot, "tools"), Env: []string{"CGO_ENABLED=0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	df, err := os.ReadFile(filepath.Join(repoRoot, "tools", "test", "e2e", "cluster", "testdata", "hello", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	builder, err := dockerengine.FindBuilder(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	_, err = run.Exec(ctx, command.Cmd{
		What: "build " + image, Name: builder.Command, Args: []string{"build", "-q", "-t", image, dir}, Env: builder.Env,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Run(context.Background(), "remove "+image, "docker", "rmi", "-f", image) })

	out := runHarness(t, 5*time.Minute, "load", image)
	if !strings.Contains(out, "docker.io/library/"+image) {
		t.Fatalf("load should report the image's name in the cluster, said:\n%s", out)
	}
}

func testPodFromLocalImageReady(t *testing.T) {
	out := kubectlT(t, "create", "namespace", namespace, "--dry-run=client", "-o", "yaml")
	apply(t, out)
	kubectlT(t, "-n", namespace, "apply", "-f", "tools/test/e2e/cluster/testdata/hello.yaml")
	kubectlT(t, "-n", namespace, "rollout", "status", "deployment/smoke-hello", "--timeout=180s")
	ready := kubectlT(t, "-n", namespace, "get", "pods", "-l", "app=smoke-hello",
		"-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
	if n := strings.Count(ready, "=True"); n != 2 {
		t.Fatalf("want 2 Ready pods, got %q", ready)
	}
}

func apply(t *testing.T, manifest string) {
	t.Helper()
	if _, err := kube.OutputStdin(context.Background(), strings.NewReader(manifest), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

func testPortForward(t *testing.T) {
	requireWorkload(t)
	addr, stop, err := kube.PortForward(context.Background(), namespace, "deployment/smoke-hello", 0, 8080) // 0: any free local port
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	url := "http://" + addr + "/"
	eventually(t, 30*time.Second, "greeting through port-forward", func() error { return expectGreeting(url, "") })
}

func testIngressClassNginxAndNoClass(t *testing.T) {
	requireWorkload(t)
	for _, tc := range []struct{ name, file string }{
		{"class nginx", "ingress-nginx-class.yaml"},
		{"no class", "ingress-no-class.yaml"},
		{"class annotation nginx", "ingress-class-annotation.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kubectlT(t, "-n", namespace, "delete", "ingress", "smoke-hello", "--ignore-not-found", "--wait")
			eventually(t, 60*time.Second, "no route before the Ingress exists", func() error {
				if status, _, err := get(ingressURL(), "scalable.local"); err != nil || status != http.StatusNotFound {
					return fmt.Errorf("status %d, err %v; want 404", status, err)
				}
				return nil
			})
			kubectlT(t, "-n", namespace, "apply", "-f", "tools/test/e2e/cluster/testdata/"+tc.file)
			eventually(t, 60*time.Second, "greeting through the ingress", func() error {
				return expectGreeting(ingressURL(), "scalable.local")
			})
			class := kubectlT(t, "-n", namespace, "get", "ingress", "smoke-hello", "-o", "jsonpath={.spec.ingressClassName}")
			t.Logf("%s: served; stored ingressClassName=%q", tc.file, class)
		})
	}
}

func testRolloutRestart(t *testing.T) {
	requireWorkload(t)
	before := podNames(t)
	kubectlT(t, "-n", namespace, "rollout", "restart", "deployment/smoke-hello")
	kubectlT(t, "-n", namespace, "rollout", "status", "deployment/smoke-hello", "--timeout=180s")
	eventually(t, 60*time.Second, "old pods gone", func() error {
		after := podNames(t)
		for _, p := range after {
			for _, b := range before {
				if p == b {
					return fmt.Errorf("pod %s from before the restart still present", p)
				}
			}
		}
		if len(after) != 2 {
			return fmt.Errorf("pods %v, want 2", after)
		}
		return nil
	})
	eventually(t, 60*time.Second, "greeting through the ingress after the restart", func() error {
		return expectGreeting(ingressURL(), "scalable.local")
	})
}

func podNames(t *testing.T) []string {
	return strings.Fields(kubectlT(t, "-n", namespace, "get", "pods", "-l", "app=smoke-hello", "-o", "jsonpath={.items[*].metadata.name}"))
}

// clusterProcesses lists the daemons and every containerd shim of the cluster.
func clusterProcesses() map[int]string {
	m := map[int]string{}
	for name, pid := range cluster.DaemonPIDs() {
		m[pid] = name
	}
	for _, pid := range proc.WithArg(cfg.ContainerdSocket()) {
		m[pid] = "containerd-shim"
	}
	return m
}

func testUpRecoversAfterKill9(t *testing.T) {
	requireWorkload(t)
	procs := clusterProcesses()
	if pids := cluster.DaemonPIDs(); len(pids) != 7 {
		t.Fatalf("want 7 running daemons before the kill, have %v", pids)
	}
	for pid, name := range procs {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %s (%d): %v", name, pid, err)
		}
	}
	eventually(t, 30*time.Second, "killed processes gone", func() error {
		for pid, name := range procs {
			if proc.Running(pid) {
				return fmt.Errorf("%s (%d) still running", name, pid)
			}
		}
		return nil
	})
	t.Logf("killed %d processes with SIGKILL", len(procs))
	start := time.Now()
	runHarness(t, 10*time.Minute, "up")
	t.Logf("cluster-up after kill -9 took %s", time.Since(start).Round(100*time.Millisecond))
	eventually(t, 3*time.Minute, "the smoke workload serving again through the ingress", func() error {
		return expectGreeting(ingressURL(), "scalable.local")
	})
	kubectlT(t, "-n", namespace, "rollout", "status", "deployment/smoke-hello", "--timeout=180s")
}

func testDownLeavesNothing(t *testing.T) {
	before, err := network.LoadSnapshot(filepath.Join(cfg.StateDir, "host-iptables-before.json"))
	if err != nil || len(before) == 0 {
		t.Fatalf("the cluster's record of the host's iptables is missing: %v", err)
	}
	procs := clusterProcesses()
	runHarness(t, 5*time.Minute, "down")

	for pid, name := range procs {
		if proc.Running(pid) {
			t.Errorf("%s (pid %d) still running after down", name, pid)
		}
	}
	if left := proc.WithArg(cfg.ContainerdSocket()); len(left) > 0 {
		t.Errorf("containerd shims still running: %v", left)
	}
	for _, link := range []string{cfg.NodeBridge, cfg.CNIBridge} {
		if network.LinkExists(link) {
			t.Errorf("interface %s still present", link)
		}
	}
	ctx := context.Background()
	chains, err := network.Leftovers(ctx, run, before)
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) > 0 {
		t.Errorf("iptables chains of the cluster left: %v", chains)
	}
	ns, err := network.PodNetnsInCIDR(ctx, run, cfg.NetnsDir, cfg.ClusterCIDR)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) > 0 {
		t.Errorf("pod network namespaces left: %v", ns)
	}
	if proc.CgroupTreeExists(cfg.CgroupRoot) {
		t.Errorf("cgroup %s left", cfg.CgroupRoot)
	}
	if ms, _ := proc.MountsUnder(cfg.StateDir); len(ms) > 0 {
		t.Errorf("mounts left under %s: %v", cfg.StateDir, ms)
	}
	if _, err := os.Stat(cfg.StateDir); !os.IsNotExist(err) {
		t.Errorf("state dir %s still present (%v)", cfg.StateDir, err)
	}
	cache, _ := filepath.Glob(filepath.Join(cfg.CNIResultsDir, cfg.CNINetwork+"-*"))
	if len(cache) > 0 {
		t.Errorf("CNI cache files left: %v", cache)
	}
	// A second down finds nothing to do and succeeds.
	runHarness(t, time.Minute, "down")
}

// testUpAgain leaves the cluster up, as the suite found it (warm start).
func testUpAgain(t *testing.T) {
	start := time.Now()
	out := runHarness(t, 10*time.Minute, "up")
	t.Logf("warm cluster-up took %s", time.Since(start).Round(100*time.Millisecond))
	if m := regexp.MustCompile(`node Ready ([0-9.]+s) after start`).FindStringSubmatch(out); m != nil {
		t.Logf("warm start to node Ready: %s", m[1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.Ready(ctx); err != nil {
		t.Fatalf("after up, the cluster is not ready: %v", err)
	}
}
