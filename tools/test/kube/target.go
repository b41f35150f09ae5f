package kube

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/kubectl"

	"scalable-app/tools/test/testcluster"
)

// Target is the cluster a suite runs against and the ways into it from here.
type Target struct {
	Name         string // for messages: "the test cluster", "minikube", a context name
	logf         func(string, ...any)
	Kubectl      Kubectl // kubectl for the target, in its kubeconfig's namespace
	IngressAddr  string  // host:port where the Ingress controller answers plain HTTP
	NodeAddr     string  // host where NodePort Services answer
	PodsRoutable bool    // pod IPs can be dialled from this machine
	// ProxyLog is kube-proxy's log file when this machine runs it (the
	// test cluster): a failed connect is looked up against its rule syncs.
	ProxyLog string
	load     func(ctx context.Context, image string) error
}

// Settings read by Detect, so a suite runs against any cluster.
const (
	EnvIngressAddr = "E2E_INGRESS_ADDR" // host:port of the Ingress controller
	EnvNodeAddr    = "E2E_NODE_ADDR"    // address of a node, for NodePorts
)

// Detect chooses the cluster: the one KUBECONFIG names when it is set, else the
// project's test cluster (make cluster-up). For a minikube context the image is
// loaded with `minikube image load` and the addresses come from `minikube ip`.
func Detect(ctx context.Context, run *command.Runner, getenv func(string) string, repoRoot string, logf func(string, ...any)) (*Target, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	kc := getenv("KUBECONFIG")
	if kc == "" || kc == testcluster.ConfigFromEnv(getenv).KubeconfigPath() {
		return harness(ctx, run, getenv, repoRoot, logf)
	}
	k := Kubectl{kubectl.Kubectl{Run: run, Bin: "kubectl", Dir: repoRoot}}
	if _, err := exec.LookPath(k.Bin); err != nil {
		return nil, fmt.Errorf("KUBECONFIG is set but kubectl is not on PATH: install kubectl")
	}
	name, err := k.CurrentContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the current context of KUBECONFIG=%s: %w", kc, err)
	}
	t := &Target{Name: "context " + name, Kubectl: k, logf: logf}
	if name == "minikube" || name == getenv("MINIKUBE_PROFILE") {
		if _, err := exec.LookPath("minikube"); err != nil {
			return nil, fmt.Errorf("context %s is minikube's but the minikube command is not on PATH", name)
		}
		out, err := run.Output(ctx, "find minikube's address", "minikube", "-p", name, "ip")
		if err != nil {
			return nil, fmt.Errorf("%w (is minikube running?)", err)
		}
		ip := strings.TrimSpace(string(out))
		t.Name = "minikube"
		t.NodeAddr = ip
		t.IngressAddr = net.JoinHostPort(ip, "80") // the ingress addon listens on the node's port 80
		t.load = func(ctx context.Context, image string) error {
			return run.Run(ctx, "load "+image+" into minikube", "minikube", "-p", name, "image", "load", image)
		}
	}
	if v := getenv(EnvIngressAddr); v != "" {
		t.IngressAddr = v
	}
	if v := getenv(EnvNodeAddr); v != "" {
		t.NodeAddr = v
	}
	if t.IngressAddr == "" || t.NodeAddr == "" {
		return nil, fmt.Errorf("context %s is neither the test cluster nor minikube: set %s (host:port of its Ingress controller) and %s (a node's address), and load the image onto its nodes yourself",
			name, EnvIngressAddr, EnvNodeAddr)
	}
	return t, nil
}

func harness(ctx context.Context, run *command.Runner, getenv func(string) string, repoRoot string, logf func(string, ...any)) (*Target, error) {
	cluster := testcluster.New(testcluster.ConfigFromEnv(getenv), run, io.Discard, "")
	cfg := cluster.Config()
	if err := cluster.Ready(ctx); err != nil {
		return nil, fmt.Errorf("the test cluster is not ready (%v): start it with `make cluster-up`, or point KUBECONFIG at your own cluster", err)
	}
	t := &Target{
		Name:         "the test cluster",
		logf:         logf,
		Kubectl:      Kubectl{kubectl.Kubectl{Run: run, Bin: cfg.KubectlPath(), Kubeconfig: cfg.KubeconfigPath(), Dir: repoRoot}},
		IngressAddr:  cfg.IngressAddr(),
		NodeAddr:     "127.0.0.1", // kube-proxy serves NodePorts on loopback too
		PodsRoutable: true,        // pods sit on a bridge of this machine
		ProxyLog:     filepath.Join(cfg.LogDir(), "kube-proxy.log"),
		load: func(ctx context.Context, image string) error {
			return cluster.Load(ctx, image)
		},
	}
	if v := getenv(EnvIngressAddr); v != "" {
		t.IngressAddr = v
	}
	return t, nil
}

// LoadImage makes a locally built image available to the cluster's nodes, the
// way its users do it, so `imagePullPolicy: IfNotPresent` never pulls.
func (t *Target) LoadImage(ctx context.Context, image string) error {
	if t.load == nil {
		t.logf("%s: not loading %s, it must already be on the nodes", t.Name, image)
		return nil
	}
	if err := t.load(ctx, image); err != nil {
		return fmt.Errorf("load image %s into %s: %w", image, t.Name, err)
	}
	return nil
}

// ProxyLogAround returns kube-proxy's log lines stamped within window of
// any of the failures' times ("15:04:05.000 ..." as the load generator
// stamps them), or nothing when kube-proxy's log is not on this machine.
func (t *Target) ProxyLogAround(failures []string, window time.Duration) []string {
	if t.ProxyLog == "" {
		return nil
	}
	b, err := os.ReadFile(t.ProxyLog)
	if err != nil {
		return []string{fmt.Sprintf("(kube-proxy's log: %v)", err)}
	}
	var at []time.Time
	for _, f := range failures {
		if len(f) >= 12 {
			if ts, err := time.Parse("15:04:05.000", f[:12]); err == nil {
				at = append(at, ts)
			}
		}
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		// klog: "I1203 14:15:08.844123   30860 proxier.go:757] ..."
		if len(line) < 21 {
			continue
		}
		ts, err := time.Parse("15:04:05.000000", line[6:21])
		if err != nil {
			continue
		}
		for _, a := range at {
			if d := ts.Sub(a); d > -window && d < window {
				out = append(out, line)
				break
			}
		}
	}
	return out
}
