package kubectl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"scalable-app/tools/internal/command"
)

func TestOutputPassesKubeconfigAndNamesTheCallOnFailure(t *testing.T) {
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		return "", errors.New(`Error from server (NotFound): deployments.apps "x" not found`)
	}}
	k := Kubectl{Run: command.New(fake, nil), Bin: "/opt/kubectl", Kubeconfig: "/tmp/kc"}
	_, err := k.Output(context.Background(), "get", "deployment", "x", "-n", "test")
	if err == nil || !strings.Contains(err.Error(), "kubectl get deployment") || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("error %v lacks the call or kubectl's message", err)
	}
	c := fake.Calls()[0]
	if c.Name != "/opt/kubectl" || len(c.Env) != 1 || c.Env[0] != "KUBECONFIG=/tmp/kc" {
		t.Fatalf("ran %s with env %q; want /opt/kubectl with KUBECONFIG=/tmp/kc", c.Name, c.Env)
	}
}

func TestPortForwardReturnsTheAddressKubectlPrints(t *testing.T) {
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		return "Forwarding from 127.0.0.1:40123 -> 5000\nForwarding from [::1]:40123 -> 5000\n", nil
	}}
	k := Kubectl{Run: command.New(fake, nil)}
	addr, stop, err := k.PortForward(context.Background(), "test", "deployment/scalable-app-dev", 0, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if addr != "127.0.0.1:40123" {
		t.Fatalf("addr = %q, want 127.0.0.1:40123", addr)
	}
	if got := fake.Lines()[0]; got != "kubectl port-forward -n test --address 127.0.0.1 deployment/scalable-app-dev :5000" {
		t.Fatalf("ran %q", got)
	}
	stop()
	if len(fake.Running()) != 0 {
		t.Fatal("stop left the port-forward running")
	}
}
