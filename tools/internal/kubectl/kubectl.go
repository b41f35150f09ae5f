// Package kubectl runs kubectl for every tool (the dev loop, the test
// cluster's checks, the e2e suites) through the one command runner, so each
// call is logged and each failure carries what was attempted and kubectl's
// own message.
package kubectl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"scalable-app/tools/internal/command"
)

// Kubectl runs one kubectl binary against one kubeconfig.
type Kubectl struct {
	Run        *command.Runner
	Bin        string // kubectl binary; "kubectl" when empty
	Kubeconfig string // passed as KUBECONFIG; empty keeps the caller's
	Dir        string // working directory, so paths read as in the README (k8s/...)
}

func (k Kubectl) cmd(args []string) command.Cmd {
	c := command.Cmd{What: "kubectl " + firstWords(args), Name: k.Bin, Args: args, Dir: k.Dir}
	if c.Name == "" {
		c.Name = "kubectl"
	}
	if k.Kubeconfig != "" {
		c.Env = []string{"KUBECONFIG=" + k.Kubeconfig}
	}
	return c
}

// Command is `kubectl ARGS` on this cluster as a command.Cmd, for callers
// that start kubectl in the background (logs --follow) with Runner.Start.
func (k Kubectl) Command(args ...string) command.Cmd { return k.cmd(args) }

// firstWords names a call in errors by its verb and object, e.g. "get pods".
func firstWords(args []string) string {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(words) == 2 {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// Output runs kubectl with args and returns its standard output.
func (k Kubectl) Output(ctx context.Context, args ...string) (string, error) {
	out, err := k.Run.Exec(ctx, k.cmd(args))
	return string(out), err
}

// OutputStdin is Output with stdin fed to the command.
func (k Kubectl) OutputStdin(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	c := k.cmd(args)
	c.Stdin = stdin
	out, err := k.Run.Exec(ctx, c)
	return string(out), err
}

// JSON runs kubectl with args plus `-o json` and decodes the output into v.
func (k Kubectl) JSON(ctx context.Context, v any, args ...string) error {
	out, err := k.Output(ctx, append(args, "-o", "json")...)
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
// with no -n flag, in a namespace of the caller's own.
func (k Kubectl) InNamespace(ctx context.Context, dir, ns string) (Kubectl, error) {
	raw, err := k.Output(ctx, "config", "view", "--raw", "--minify", "--flatten")
	if err != nil {
		return Kubectl{}, fmt.Errorf("copy kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig-"+ns)
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		return Kubectl{}, fmt.Errorf("write kubeconfig copy: %w", err)
	}
	n := k
	n.Kubeconfig = path
	if _, err := n.Output(ctx, "config", "set-context", "--current", "--namespace="+ns); err != nil {
		return Kubectl{}, fmt.Errorf("set namespace %s in kubeconfig copy: %w", ns, err)
	}
	return n, nil
}

// CurrentContext names the kubeconfig's current context.
func (k Kubectl) CurrentContext(ctx context.Context) (string, error) {
	out, err := k.Output(ctx, "config", "current-context")
	return strings.TrimSpace(out), err
}

// PortForward runs `kubectl port-forward TARGET` in ns (target as kubectl
// takes it: pod/NAME, deployment/NAME) from localPort on 127.0.0.1 (0: any
// free port) to port, and returns the local address once kubectl listens,
// and a function that stops it.
func (k Kubectl) PortForward(ctx context.Context, ns, target string, localPort, port int) (string, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	ports := fmt.Sprintf("%d:%d", localPort, port)
	if localPort == 0 {
		ports = fmt.Sprintf(":%d", port)
	}
	args := []string{"port-forward", "-n", ns, "--address", "127.0.0.1", target, ports}
	c := k.cmd(args)
	c.What = "port-forward to " + ns + "/" + target
	c.Stdout = pw
	p, err := k.Run.Start(ctx, c)
	if err != nil {
		cancel()
		return "", nil, err
	}
	exited := make(chan struct{})
	go func() {
		_ = p.Wait()
		pw.Close()
		close(exited)
	}()
	stop := func() { cancel(); <-exited }
	// kubectl prints "Forwarding from 127.0.0.1:NNNNN -> PORT" once it listens.
	sc := bufio.NewScanner(pr)
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
	return "", nil, fmt.Errorf("port-forward to %s/%s ended before it listened", ns, target)
}

// Find returns the kubectl on PATH, else the first of fallbacks that exists
// (the test cluster's), for a tool that only renders kustomizations and so
// needs no cluster.
func Find(fallbacks ...string) (string, error) {
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p, nil
	}
	for _, p := range fallbacks {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("kubectl not found on PATH: install kubectl (any version with kustomize built in) to render the overlays, or build the test cluster's (make cluster-up); no cluster is needed")
}
