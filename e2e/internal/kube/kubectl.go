// Package kube drives a real cluster for the end-to-end suites: it runs kubectl
// (each command logged, each failure wrapped with what was attempted and
// kubectl's own message), reads objects as JSON, and waits for conditions by
// polling.
package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Kubectl runs one kubectl binary against one kubeconfig.
type Kubectl struct {
	Bin        string                        // kubectl binary
	Kubeconfig string                        // passed as KUBECONFIG; empty keeps the caller's
	Dir        string                        // working directory, so paths read as in the README (k8s/...)
	Logf       func(format string, a ...any) // one line per command; nil for silence
}

// Run runs kubectl with args and returns its standard output.
func (k Kubectl) Run(ctx context.Context, args ...string) (string, error) {
	return k.RunStdin(ctx, nil, args...)
}

// RunStdin is Run with stdin fed to the command.
func (k Kubectl) RunStdin(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.Bin, args...)
	cmd.Dir = k.Dir
	cmd.Env = os.Environ()
	if k.Kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+k.Kubeconfig)
	}
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if k.Logf != nil {
		status := "ok"
		if err != nil {
			status = err.Error()
		}
		k.Logf("$ kubectl %s  (%s, %s)", strings.Join(args, " "), status, time.Since(start).Round(time.Millisecond))
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, lastLines(msg, 5))
	}
	return stdout.String(), nil
}

// JSON runs kubectl with args plus `-o json` and decodes the output into v.
func (k Kubectl) JSON(ctx context.Context, v any, args ...string) error {
	out, err := k.Run(ctx, append(args, "-o", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("decode output of kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// InNamespace returns a Kubectl whose current namespace is ns, by writing a
// self-contained copy of the kubeconfig (current context only) into dir. This
// lets commands such as `kubectl apply -f k8s/deployment.yaml` run verbatim,
// with no -n flag, in a namespace of the suite's own.
func (k Kubectl) InNamespace(ctx context.Context, dir, ns string) (Kubectl, error) {
	raw, err := k.Run(ctx, "config", "view", "--raw", "--minify", "--flatten")
	if err != nil {
		return Kubectl{}, fmt.Errorf("copy kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig-"+ns)
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		return Kubectl{}, fmt.Errorf("write kubeconfig copy: %w", err)
	}
	n := k
	n.Kubeconfig = path
	if _, err := n.Run(ctx, "config", "set-context", "--current", "--namespace="+ns); err != nil {
		return Kubectl{}, fmt.Errorf("set namespace %s in kubeconfig copy: %w", ns, err)
	}
	return n, nil
}

// CurrentContext names the kubeconfig's current context.
func (k Kubectl) CurrentContext(ctx context.Context) (string, error) {
	out, err := k.Run(ctx, "config", "current-context")
	return strings.TrimSpace(out), err
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// PortForward runs `kubectl port-forward` to port of pod in ns on a free local
// port and returns the local address and a function that stops it.
func (k Kubectl) PortForward(ctx context.Context, ns, pod string, port int) (string, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, k.Bin, "port-forward", "-n", ns, "pod/"+pod, fmt.Sprintf("127.0.0.1::%d", port))
	cmd.Dir = k.Dir
	cmd.Env = os.Environ()
	if k.Kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+k.Kubeconfig)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", ns, pod, err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", ns, pod, err)
	}
	stop := func() { cancel(); cmd.Wait() }
	// kubectl prints "Forwarding from 127.0.0.1:NNNNN -> PORT" once it listens.
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "Forwarding from "); ok {
			addr, _, _ = strings.Cut(addr, " ")
			go func() {
				for sc.Scan() {
				}
			}()
			return addr, stop, nil
		}
	}
	stop()
	return "", nil, fmt.Errorf("port-forward to %s/%s ended before it listened", ns, pod)
}
