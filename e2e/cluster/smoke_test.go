//go:build e2e

// Package cluster is the smoke suite of the test cluster harness
// (cmd/testcluster): it starts the cluster, runs a pod from a locally built
// image, reaches it through kubectl port-forward and through the ingress
// controller, restarts it with a rollout, kills every cluster process and
// recovers, tears the cluster down checking that nothing of it is left, and
// starts it again. The tests run in file order and build on each other.
//
//	make cluster-test   (root; leaves the cluster up)
package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"scalable-app/internal/dockerengine"
	"scalable-app/internal/testcluster"
	"scalable-app/internal/testcluster/network"
	"scalable-app/internal/testcluster/proc"
	"scalable-app/internal/testcluster/runner"
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
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the test cluster smoke suite needs root: it starts and stops the cluster (run as root: make cluster-test)")
		os.Exit(1)
	}
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	dir, err := os.MkdirTemp("", "testcluster-smoke-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	harness = filepath.Join(dir, "testcluster")
	cmd := exec.Command("go", "build", "-o", harness, "./cmd/testcluster")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build cmd/testcluster: %v\n%s", err, out)
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
	cmd := exec.CommandContext(ctx, harness, args...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	t.Logf("testcluster %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("testcluster %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testcluster.Kubectl(), append([]string{"--kubeconfig", testcluster.Kubeconfig()}, args...)...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
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

func ingressURL() string { return "http://" + testcluster.IngressAddr() + ingressPath }

func TestUp(t *testing.T) {
	start := time.Now()
	runHarness(t, 40*time.Minute, "up")
	t.Logf("cluster-up (cluster found up, or started) took %s", time.Since(start).Round(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := testcluster.Ready(ctx); err != nil {
		t.Fatalf("after up, the cluster is not ready: %v", err)
	}
	if out := runHarness(t, time.Minute, "up"); !strings.Contains(out, "already up") {
		t.Fatalf("a second up should say the cluster is already up, said:\n%s", out)
	}
	out := kubectl(t, "version", "-o", "json")
	var v struct {
		Client struct{ GitVersion string } `json:"clientVersion"`
		Server struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, out)
	}
	want := testcluster.ConfigFromEnv(os.Getenv).KubernetesVersion
	if v.Client.GitVersion != want || v.Server.GitVersion != want {
		t.Fatalf("kubectl %q against server %q, want %s for both", v.Client.GitVersion, v.Server.GitVersion, want)
	}
}

func TestLoadLocallyBuiltImage(t *testing.T) {
	ctx := context.Background()
	engine, err := dockerengine.Ensure(ctx, dockerengine.Options{Log: os.Stderr})
	if err != nil {
		t.Fatalf("docker engine: %v", err)
	}
	t.Cleanup(func() { engine.Stop() })
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "hello"), "./e2e/cluster/testdata/hello")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the smoke workload: %v\n%s", err, out)
	}
	df, err := os.ReadFile(filepath.Join(repoRoot, "e2e", "cluster", "testdata", "hello", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	builder, err := dockerengine.FindBuilder(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := exec.Command(builder.Command, "build", "-q", "-t", image, dir)
	db.Env = append(os.Environ(), builder.Env...)
	if out, err := db.CombinedOutput(); err != nil {
		t.Fatalf("docker build %s: %v\n%s", image, err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })

	out := runHarness(t, 5*time.Minute, "load", image)
	if !strings.Contains(out, "docker.io/library/"+image) {
		t.Fatalf("load should report the image's name in the cluster, said:\n%s", out)
	}
}

func TestPodFromLocalImageReady(t *testing.T) {
	out := kubectl(t, "create", "namespace", namespace, "--dry-run=client", "-o", "yaml")
	apply(t, out)
	kubectl(t, "-n", namespace, "apply", "-f", "e2e/cluster/testdata/hello.yaml")
	kubectl(t, "-n", namespace, "rollout", "status", "deployment/smoke-hello", "--timeout=180s")
	ready := kubectl(t, "-n", namespace, "get", "pods", "-l", "app=smoke-hello",
		"-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
	if n := strings.Count(ready, "=True"); n != 2 {
		t.Fatalf("want 2 Ready pods, got %q", ready)
	}
}

func apply(t *testing.T, manifest string) {
	t.Helper()
	cmd := exec.Command(testcluster.Kubectl(), "--kubeconfig", testcluster.Kubeconfig(), "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

func TestPortForward(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, testcluster.Kubectl(), "--kubeconfig", testcluster.Kubeconfig(),
		"-n", namespace, "port-forward", "deployment/smoke-hello", ":8080")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kubectl port-forward: %v", err)
	}
	defer func() {
		cancel()
		cmd.Wait()
	}()
	// "Forwarding from 127.0.0.1:41234 -> 8080" names the local port.
	portc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				portc <- m[1]
			}
		}
	}()
	var port string
	select {
	case port = <-portc:
	case <-time.After(60 * time.Second):
		t.Fatalf("kubectl port-forward announced no port: %s", stderr.String())
	}
	url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/"
	eventually(t, 30*time.Second, "greeting through port-forward", func() error { return expectGreeting(url, "") })
}

func TestIngressClassNginxAndNoClass(t *testing.T) {
	for _, tc := range []struct{ name, file string }{
		{"class nginx", "ingress-nginx-class.yaml"},
		{"no class", "ingress-no-class.yaml"},
		{"class annotation nginx", "ingress-class-annotation.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kubectl(t, "-n", namespace, "delete", "ingress", "smoke-hello", "--ignore-not-found", "--wait")
			eventually(t, 60*time.Second, "no route before the Ingress exists", func() error {
				if status, _, err := get(ingressURL(), "scalable.local"); err != nil || status != http.StatusNotFound {
					return fmt.Errorf("status %d, err %v; want 404", status, err)
				}
				return nil
			})
			kubectl(t, "-n", namespace, "apply", "-f", "e2e/cluster/testdata/"+tc.file)
			eventually(t, 60*time.Second, "greeting through the ingress", func() error {
				return expectGreeting(ingressURL(), "scalable.local")
			})
			class := kubectl(t, "-n", namespace, "get", "ingress", "smoke-hello", "-o", "jsonpath={.spec.ingressClassName}")
			t.Logf("%s: served; stored ingressClassName=%q", tc.file, class)
		})
	}
}

func TestRolloutRestart(t *testing.T) {
	before := podNames(t)
	kubectl(t, "-n", namespace, "rollout", "restart", "deployment/smoke-hello")
	kubectl(t, "-n", namespace, "rollout", "status", "deployment/smoke-hello", "--timeout=180s")
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
	return strings.Fields(kubectl(t, "-n", namespace, "get", "pods", "-l", "app=smoke-hello", "-o", "jsonpath={.items[*].metadata.name}"))
}

// clusterProcesses lists the daemons and every containerd shim of the cluster.
func clusterProcesses() map[int]string {
	m := map[int]string{}
	for name, pid := range testcluster.DaemonPIDs() {
		m[pid] = name
	}
	for _, pid := range proc.WithArg(testcluster.ConfigFromEnv(os.Getenv).ContainerdSocket()) {
		m[pid] = "containerd-shim"
	}
	return m
}

func TestUpRecoversAfterKill9(t *testing.T) {
	procs := clusterProcesses()
	if len(testcluster.DaemonPIDs()) != 7 {
		t.Fatalf("want 7 running daemons before the kill, have %v", testcluster.DaemonPIDs())
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
	kubectl(t, "-n", namespace, "rollout", "status", "deployment/smoke-hello", "--timeout=180s")
}

func TestDownLeavesNothing(t *testing.T) {
	cfg := testcluster.ConfigFromEnv(os.Getenv)
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
	r := runner.New(nil)
	ctx := context.Background()
	chains, err := network.Leftovers(ctx, r, before)
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) > 0 {
		t.Errorf("iptables chains of the cluster left: %v", chains)
	}
	ns, err := network.PodNetnsInCIDR(ctx, r, cfg.ClusterCIDR)
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
	cache, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", cfg.CNINetwork+"-*"))
	if len(cache) > 0 {
		t.Errorf("CNI cache files left: %v", cache)
	}
	// A second down finds nothing to do and succeeds.
	runHarness(t, time.Minute, "down")
}

// TestUpAgain leaves the cluster up, as the suite found it (warm start).
func TestUpAgain(t *testing.T) {
	start := time.Now()
	out := runHarness(t, 10*time.Minute, "up")
	t.Logf("warm cluster-up took %s", time.Since(start).Round(100*time.Millisecond))
	if m := regexp.MustCompile(`node Ready ([0-9.]+s) after start`).FindStringSubmatch(out); m != nil {
		t.Logf("warm start to node Ready: %s", m[1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := testcluster.Ready(ctx); err != nil {
		t.Fatalf("after up, the cluster is not ready: %v", err)
	}
}
