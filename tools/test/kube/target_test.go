package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProxyLogAround(t *testing.T) {
	log := filepath.Join(t.TempDir(), "kube-proxy.log")
	lines := []string{
		`I1203 14:15:06.100000   30860 proxier.go:763] "Syncing iptables rules" fullSync=true`,
		`I1203 14:15:08.800000   30860 proxier.go:763] "Syncing iptables rules" fullSync=false`,
		`I1203 14:15:08.850000   30860 proxier.go:757] "SyncProxyRules complete" elapsed="52ms"`,
		`not a klog line`,
		`I1203 14:15:11.000000   30860 proxier.go:763] "Syncing iptables rules" fullSync=false`,
	}
	if err := os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tg := &Target{ProxyLog: log}
	got := tg.ProxyLogAround([]string{"14:15:08.844 connect: dial tcp 127.0.0.1:30080: connect: connection refused"}, time.Second)
	if len(got) != 2 || !strings.Contains(got[0], "14:15:08.800000") || !strings.Contains(got[1], "14:15:08.850000") {
		t.Errorf("lines around 14:15:08.844 = %q, want the two syncs within a second", got)
	}
	if got := (&Target{}).ProxyLogAround([]string{"14:15:08.844 x"}, time.Second); got != nil {
		t.Errorf("no log on this machine: %q, want nothing", got)
	}
}
