package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"scalable-app/tools/internal/command"
)

// EnsureBridge creates a bridge with no ports holding ip/32, up. A port-less
// bridge holds an address as a dummy interface would, and works on hosts
// without the dummy kernel module.
func EnsureBridge(ctx context.Context, r *command.Runner, name, ip string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		if err := r.Run(ctx, "create node bridge "+name, "ip", "link", "add", name, "type", "bridge"); err != nil {
			return err
		}
	}
	if !hasAddr(name, ip) {
		if err := r.Run(ctx, "give "+name+" the node address", "ip", "addr", "add", ip+"/32", "dev", name); err != nil {
			return err
		}
	}
	return r.Run(ctx, "bring up "+name, "ip", "link", "set", name, "up")
}

func hasAddr(ifname, ip string) bool {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return false
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.String() == ip {
			return true
		}
	}
	return false
}

// DeleteLink removes an interface.
func DeleteLink(ctx context.Context, r *command.Runner, name string) error {
	return r.Run(ctx, "delete interface "+name, "ip", "link", "del", name)
}

// LinkExists reports whether the interface is present.
func LinkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// sysctls the cluster sets, directly or through kubelet and kube-proxy.
// Their values before the first start are restored by teardown.
func sysctls() []string {
	return []string{
		"net/ipv4/ip_forward",
		"net/bridge/bridge-nf-call-iptables",
		"net/bridge/bridge-nf-call-ip6tables",
		"net/ipv4/conf/all/route_localnet",
		"vm/overcommit_memory",
		"vm/panic_on_oom",
		"kernel/panic",
		"kernel/panic_on_oops",
		"kernel/keys/root_maxkeys",
		"kernel/keys/root_maxbytes",
		"net/netfilter/nf_conntrack_max",
		"net/netfilter/nf_conntrack_tcp_timeout_established",
		"net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	}
}

// SaveSysctls records the current values of sysctls unless path exists.
func SaveSysctls(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	vals := map[string]string{}
	for _, k := range sysctls() {
		if b, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			vals[k] = strings.TrimSpace(string(b))
		}
	}
	b, err := json.Marshal(vals)
	if err != nil {
		return fmt.Errorf("encode sysctls: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("record sysctls: %w", err)
	}
	return nil
}

// RestoreSysctls writes back the recorded values that have changed.
func RestoreSysctls(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read recorded sysctls: %w", err)
	}
	var vals map[string]string
	if err := json.Unmarshal(b, &vals); err != nil {
		return nil, fmt.Errorf("decode recorded sysctls: %w", err)
	}
	var changed []string
	var errs []error
	for k, v := range vals {
		p := filepath.Join("/proc/sys", k)
		cur, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s: %w", k, err))
			continue
		}
		changed = append(changed, k+"="+v)
	}
	return changed, errors.Join(errs...)
}

// SetSysctl writes one value under /proc/sys.
func SetSysctl(key, value string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// PodNetnsInCIDR lists the names of the network namespaces pinned in dir whose
// interfaces hold an address in cidr: the pods of this cluster, and only
// them, since no one else uses its pod range.
func PodNetnsInCIDR(ctx context.Context, r *command.Runner, dir, cidr string) ([]string, error) {
	_, pods, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", cidr, err)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var found []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "cni-") {
			continue
		}
		out, err := r.Output(ctx, "inspect network namespace "+e.Name(), "ip", "-n", e.Name(), "-4", "-o", "addr", "show")
		if err != nil {
			continue // not a live namespace (e.g. a stale pin): not provably ours
		}
		for _, f := range strings.Fields(string(out)) {
			if ip, _, err := net.ParseCIDR(f); err == nil && pods.Contains(ip) {
				found = append(found, e.Name())
				break
			}
		}
	}
	return found, nil
}

// DeleteNetns removes a pinned network namespace.
func DeleteNetns(ctx context.Context, r *command.Runner, name string) error {
	return r.Run(ctx, "delete pod network namespace "+name, "ip", "netns", "delete", name)
}
