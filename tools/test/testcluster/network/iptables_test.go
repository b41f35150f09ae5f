package network

import (
	"strings"
	"testing"
)

func TestCleanupScriptRemovesOnlyNewClusterChains(t *testing.T) {
	before := TableState{
		Chains: []string{"PREROUTING", "POSTROUTING", "DOCKER", "KUBE-OTHER"},
		Rules: []string{
			"-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
			"-A POSTROUTING -j KUBE-OTHER",
		},
	}
	now := TableState{
		Chains: []string{"PREROUTING", "POSTROUTING", "DOCKER", "KUBE-OTHER", "KUBE-SERVICES", "CNI-abc123", "KUBE-POSTROUTING"},
		Rules: []string{
			"-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
			"-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
			"-A POSTROUTING -j KUBE-OTHER",
			"-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
			"-A POSTROUTING -s 10.214.0.5/32 -m comment --comment \"name: \\\"x\\\" id: \\\"y\\\"\" -j CNI-abc123",
			"-A KUBE-SERVICES -d 10.215.0.1/32 -j KUBE-SVC-X",
			"-A KUBE-OTHER -j RETURN",
		},
	}
	got := cleanupScript("nat", before, now)
	want := `*nat
-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-D POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-D POSTROUTING -s 10.214.0.5/32 -m comment --comment "name: \"x\" id: \"y\"" -j CNI-abc123
-F CNI-abc123
-F KUBE-POSTROUTING
-F KUBE-SERVICES
-X CNI-abc123
-X KUBE-POSTROUTING
-X KUBE-SERVICES
COMMIT
`
	if got != want {
		t.Fatalf("script:\n%s\nwant:\n%s", got, want)
	}
	for _, keep := range []string{"DOCKER", "KUBE-OTHER"} {
		if strings.Contains(got, " "+keep+"\n") {
			t.Errorf("script touches %s, which the host had before", keep)
		}
	}
}

func TestCleanupScriptEmptyWhenNothingNew(t *testing.T) {
	s := TableState{Chains: []string{"INPUT", "KUBE-FIREWALL"}, Rules: []string{"-A INPUT -j KUBE-FIREWALL"}}
	if got := cleanupScript("filter", s, s); got != "" {
		t.Fatalf("want no script, got:\n%s", got)
	}
}
