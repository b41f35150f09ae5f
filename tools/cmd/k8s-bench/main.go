// Command k8s-bench measures the manifests of k8s/ on a real cluster, in one
// run: the time from `kubectl apply` to 2 Ready pods, the duration of
// `kubectl rollout restart`, and requests per second through the Ingress
// against straight to one pod, with the pods' peak CPU and memory under that
// load. It prints a Markdown table for BENCHMARKS.md.
//
//	(cd tools && go run ./cmd/k8s-bench)   # the test cluster (make cluster-up)
//	KUBECONFIG=~/.kube/config sh -c "cd tools && go run ./cmd/k8s-bench"   # your minikube
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"scalable-app/tools/internal/cli"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

const (
	ns       = "scalable-app-bench"
	host     = "bench.scalable.local" // its own host: no clash with an Ingress for scalable.local
	selector = "app=scalable-app"
	image    = "scalable-app:latest"
)

func main() {
	cli.Main("k8s-bench", func(ctx context.Context) error {
		return run(ctx, command.New(command.OS{}, os.Stderr), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}

type options struct {
	root     string
	rounds   int
	conc     int
	duration time.Duration
	keep     bool
}

func run(ctx context.Context, runner *command.Runner, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("k8s-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.root, "root", "", "repository root (holds k8s/; default: the checkout this runs in)")
	fs.IntVar(&o.rounds, "rounds", 3, "repetitions of apply-to-Ready and of rollout restart")
	fs.IntVar(&o.conc, "concurrency", 16, "concurrent clients in the throughput runs")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each throughput run")
	fs.BoolVar(&o.keep, "keep", false, "leave namespace "+ns+" in place afterwards")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: k8s-bench [flags]\n\nMeasures k8s/ on the test cluster, or on the cluster KUBECONFIG names, in namespace %s.\n\n", ns)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stderr); err != nil {
		return err
	}
	if o.rounds < 1 || o.conc < 1 || o.duration <= 0 {
		fmt.Fprintln(stderr, "k8s-bench: --rounds, --concurrency and --duration must be positive")
		return cli.Usage(errors.New("--rounds, --concurrency and --duration must be positive"))
	}
	root, err := filepath.Abs(o.root)
	if o.root == "" {
		root, err = repo.Root()
	}
	if err != nil {
		return fmt.Errorf("resolve --root: %w", err)
	}
	logf := func(f string, a ...any) { fmt.Fprintf(stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }

	if _, err := runner.Output(ctx, "look up the image to measure", "docker", "image", "inspect", image); err != nil {
		return fmt.Errorf("%w\nbuild it with `make image`", err)
	}
	t, err := kube.Detect(ctx, runner, getenv, root, logf)
	if err != nil {
		return err
	}
	logf("cluster: %s; loading %s", t.Name, image)
	if err := t.LoadImage(ctx, image); err != nil {
		return err
	}
	if ok, err := t.Kubectl.NamespaceExists(ctx, ns); err != nil {
		return err
	} else if ok {
		logf("removing namespace %s left by an earlier run", ns)
		if _, err := t.Kubectl.Output(ctx, "delete", "namespace", ns, "--wait=true"); err != nil {
			return err
		}
	}
	if _, err := t.Kubectl.Output(ctx, "create", "namespace", ns); err != nil {
		return err
	}
	if !o.keep {
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			t.Kubectl.Output(ctx, "delete", "namespace", ns, "--wait=false")
		}()
	}
	dir, err := os.MkdirTemp("", "k8s-bench-")
	if err != nil {
		return fmt.Errorf("make a scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)
	kc, err := t.Kubectl.InNamespace(ctx, dir, ns)
	if err != nil {
		return err
	}
	b := &bench{o: o, t: t, kc: kc, logf: logf}
	return b.all(ctx, stdout)
}

type bench struct {
	o    options
	t    *kube.Target
	kc   kube.Kubectl
	logf func(string, ...any)
}

func (b *bench) all(ctx context.Context, stdout io.Writer) error {
	var applyTimes, restartTimes []time.Duration
	for i := range b.o.rounds {
		d, err := b.applyToReady(ctx, i > 0)
		if err != nil {
			return err
		}
		b.logf("round %d: apply to 2 Ready pods in %s", i+1, d.Round(10*time.Millisecond))
		applyTimes = append(applyTimes, d)
	}
	for i := range b.o.rounds {
		d, err := b.rolloutRestart(ctx)
		if err != nil {
			return err
		}
		b.logf("round %d: rollout restart in %s", i+1, d.Round(10*time.Millisecond))
		restartTimes = append(restartTimes, d)
	}
	viaIngress, direct, peak, err := b.throughput(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Cluster: %s; %d rounds; throughput runs of %s with %d keep-alive clients (raw HTTP/1.1, no retries) back to back.\n\n",
		b.t.Name, b.o.rounds, b.o.duration, b.o.conc)
	fmt.Fprintln(stdout, "| Measure | Result |")
	fmt.Fprintln(stdout, "| --- | --- |")
	fmt.Fprintf(stdout, "| `kubectl apply` to 2 Ready pods | median %s (runs: %s) |\n", median(applyTimes), list(applyTimes))
	fmt.Fprintf(stdout, "| `kubectl rollout restart` to rollout complete | median %s (runs: %s) |\n", median(restartTimes), list(restartTimes))
	fmt.Fprintf(stdout, "| req/s through the Ingress (2 pods behind it) | %.0f (%d requests, %d failed) |\n", viaIngress.Rate(), viaIngress.Sent, viaIngress.Failed())
	fmt.Fprintf(stdout, "| req/s straight to one pod | %.0f (%d requests, %d failed) |\n", direct.Rate(), direct.Sent, direct.Failed())
	fmt.Fprintf(stdout, "| Ingress / one pod | %.2f |\n", viaIngress.Rate()/direct.Rate())
	fmt.Fprintf(stdout, "| peak per pod under the Ingress load (kubelet stats) | %s |\n", peak)
	return nil
}

// applyToReady times `kubectl apply -f` of the Deployment and Service until 2
// pods are Ready; fresh first deletes the Deployment and waits for its pods to go.
func (b *bench) applyToReady(ctx context.Context, fresh bool) (time.Duration, error) {
	if fresh {
		pods, err := b.kc.Pods(ctx, ns, selector)
		if err != nil {
			return 0, err
		}
		if _, err := b.kc.Output(ctx, "delete", "deployment", "scalable-app", "--wait=true"); err != nil {
			return 0, err
		}
		if err := b.kc.WaitGone(ctx, ns, kube.Names(pods), 2*time.Minute); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if _, err := b.kc.Output(ctx, "apply", "-f", "k8s/deployment.yaml", "-f", "k8s/service.yaml"); err != nil {
		return 0, err
	}
	if _, err := b.kc.WaitReadyPods(ctx, ns, selector, 2, 3*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (b *bench) rolloutRestart(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := b.kc.Output(ctx, "rollout", "restart", "deployment/scalable-app"); err != nil {
		return 0, err
	}
	if _, err := b.kc.Output(ctx, "rollout", "status", "deployment/scalable-app", "--timeout=3m"); err != nil {
		return 0, err
	}
	d := time.Since(start)
	// Let the old pods finish stopping so the next round starts from 2 pods.
	if _, err := b.kc.WaitReadyPods(ctx, ns, selector, 2, 2*time.Minute); err != nil {
		return 0, err
	}
	return d, nil
}

// throughput runs the same closed-loop load through the Ingress and straight
// to one pod, alternating twice, and keeps the better run of each.
func (b *bench) throughput(ctx context.Context) (load.Report, load.Report, kube.Peak, error) {
	var none load.Report
	manifest, err := os.ReadFile(filepath.Join(b.kc.Dir, "k8s", "ingress.yaml"))
	if err != nil {
		return none, none, kube.Peak{}, fmt.Errorf("read k8s/ingress.yaml: %w", err)
	}
	ing := strings.Replace(string(manifest), "host: scalable.local", "host: "+host, 1)
	if _, err := b.kc.OutputStdin(ctx, strings.NewReader(ing), "apply", "-f", "-"); err != nil {
		return none, none, kube.Peak{}, err
	}
	pods, err := b.kc.WaitReadyPods(ctx, ns, selector, 2, 2*time.Minute)
	if err != nil {
		return none, none, kube.Peak{}, err
	}
	viaIngress := load.Target{URL: "http://" + b.t.IngressAddr + "/", Host: host}
	if err := kube.Poll(ctx, 2*time.Minute, 250*time.Millisecond, "wait for the Ingress to route "+host,
		func(ctx context.Context) (bool, string, error) {
			rep, err := load.Get(ctx, viaIngress)
			if err != nil {
				return false, err.Error(), nil
			}
			return rep.Status == 200 && slices.Contains(kube.Names(pods), rep.Instance), fmt.Sprintf("status %d from %q", rep.Status, rep.Instance), nil
		}); err != nil {
		return none, none, kube.Peak{}, err
	}
	direct := load.Target{URL: "http://" + net.JoinHostPort(pods[0].IP, "5000") + "/"}
	if !b.t.PodsRoutable {
		addr, stop, err := b.kc.PortForward(ctx, ns, "pod/"+pods[0].Name, 0, 5000)
		if err != nil {
			return none, none, kube.Peak{}, err
		}
		defer stop()
		direct.URL = "http://" + addr + "/"
		b.logf("pod IPs are not reachable from here: measuring one pod through kubectl port-forward (%s)", addr)
	}
	var bestIngress, bestDirect load.Report
	var peak kube.Peak
	for i := range 2 {
		watch := b.kc.WatchUsage(ctx, pods[0].Node, ns, "scalable-app")
		r, err := b.max(ctx, viaIngress)
		p := watch()
		if err != nil {
			return none, none, kube.Peak{}, err
		}
		b.logf("run %d through the Ingress: %s", i+1, r)
		b.logf("run %d peak per pod: %s", i+1, p)
		if r.Rate() > bestIngress.Rate() {
			bestIngress = r
		}
		if p.CPUMilli > peak.CPUMilli || p.MemMiB > peak.MemMiB || peak.Samples == 0 {
			peak = kube.Peak{CPUMilli: max(peak.CPUMilli, p.CPUMilli), MemMiB: max(peak.MemMiB, p.MemMiB), Samples: peak.Samples + p.Samples, Err: p.Err}
		}
		if r, err = b.max(ctx, direct); err != nil {
			return none, none, kube.Peak{}, err
		}
		b.logf("run %d straight to pod %s: %s", i+1, pods[0].Name, r)
		if r.Rate() > bestDirect.Rate() {
			bestDirect = r
		}
	}
	if ctx.Err() != nil {
		return none, none, kube.Peak{}, ctx.Err()
	}
	return bestIngress, bestDirect, peak, nil
}

// max is the closed-loop throughput run: conc keep-alive clients back to back.
func (b *bench) max(ctx context.Context, t load.Target) (load.Report, error) {
	return load.Generate(ctx, load.Options{Target: t, KeepAlive: b.o.conc, Duration: b.o.duration, WantBody: load.Greeting})
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Millisecond)
}

func list(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(10 * time.Millisecond).String()
	}
	return strings.Join(parts, ", ")
}
