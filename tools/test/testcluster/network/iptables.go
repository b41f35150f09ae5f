// Package network sets up and removes the host networking of the test
// cluster: the node bridge, sysctls, pod network namespaces and the iptables
// chains that kubelet, kube-proxy and the CNI plugins create.
package network

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"scalable-app/tools/internal/command"
)

// Families and tables the cluster's components write to.
var (
	families = []string{"iptables", "ip6tables"}
	tables   = []string{"filter", "nat", "mangle", "raw"}
	// Prefixes of the chains kubelet, kube-proxy and the CNI plugins create.
	ourPrefixes = []string{"KUBE-", "CNI-"}
)

// TableState is the chains and rules of one table.
type TableState struct {
	Chains []string `json:"chains"`
	Rules  []string `json:"rules"` // "-A CHAIN ..." lines as iptables-save prints them
}

// Snapshot is the iptables state of the host before the cluster first started;
// teardown removes only what appeared since.
type Snapshot map[string]TableState // key: "family/table"

// TakeSnapshot reads every family and table.
func TakeSnapshot(ctx context.Context, r *command.Runner) (Snapshot, error) {
	s := Snapshot{}
	for _, fam := range families {
		for _, t := range tables {
			ts, err := readTable(ctx, r, fam, t)
			if err != nil {
				return nil, err
			}
			s[fam+"/"+t] = ts
		}
	}
	return s, nil
}

// Save writes the snapshot as JSON, unless a snapshot is already there: after
// a crash the first one still tells what the host had before.
func (s Snapshot) Save(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode iptables snapshot: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write iptables snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot reads a snapshot; a missing file gives an empty snapshot.
func LoadSnapshot(path string) (Snapshot, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return Snapshot{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read iptables snapshot: %w", err)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode iptables snapshot %s: %w", path, err)
	}
	return s, nil
}

func readTable(ctx context.Context, r *command.Runner, fam, table string) (TableState, error) {
	out, err := r.Output(ctx, "read "+fam+" table "+table, fam+"-save", "-t", table)
	if err != nil {
		// A table the kernel does not have (e.g. raw for ip6tables) is empty.
		return TableState{}, nil
	}
	var ts TableState
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, ":"):
			name, _, _ := strings.Cut(l[1:], " ")
			ts.Chains = append(ts.Chains, name)
		case strings.HasPrefix(l, "-A "):
			ts.Rules = append(ts.Rules, l)
		}
	}
	return ts, sc.Err()
}

// Ours lists, per family/table, the chains that appeared since before.
func ours(before, now TableState) map[string]bool {
	had := map[string]bool{}
	for _, c := range before.Chains {
		had[c] = true
	}
	m := map[string]bool{}
	for _, c := range now.Chains {
		if had[c] {
			continue
		}
		for _, p := range ourPrefixes {
			if strings.HasPrefix(c, p) {
				m[c] = true
			}
		}
	}
	return m
}

// cleanupScript is an iptables-restore --noflush input that deletes the rules
// jumping into our chains from other chains, then flushes and deletes our
// chains. It is empty when there is nothing of ours.
func cleanupScript(table string, before, now TableState) string {
	mine := ours(before, now)
	if len(mine) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%s\n", table)
	for _, rule := range now.Rules {
		chain, target := ruleChainTarget(rule)
		if mine[chain] || !mine[target] {
			continue
		}
		b.WriteString("-D" + strings.TrimPrefix(rule, "-A") + "\n")
	}
	names := make([]string, 0, len(mine))
	for c := range mine {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		fmt.Fprintf(&b, "-F %s\n", c)
	}
	for _, c := range names {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// ruleChainTarget returns the chain of an "-A CHAIN ..." line and the chain
// it jumps or goes to, if any.
func ruleChainTarget(rule string) (chain, target string) {
	f := strings.Fields(rule)
	if len(f) >= 2 {
		chain = f[1]
	}
	for i := 2; i+1 < len(f); i++ {
		if f[i] == "-j" || f[i] == "-g" {
			target = f[i+1]
		}
	}
	return chain, target
}

// RemoveOurs deletes the chains (and the rules jumping to them) that were not
// on the host in before. Another cluster's chains, Docker's, and anything the
// host had are left alone.
func RemoveOurs(ctx context.Context, r *command.Runner, before Snapshot) (int, error) {
	removed := 0
	for _, fam := range families {
		for _, t := range tables {
			now, err := readTable(ctx, r, fam, t)
			if err != nil {
				return removed, err
			}
			script := cleanupScript(t, before[fam+"/"+t], now)
			if script == "" {
				continue
			}
			_, err = r.Exec(ctx, command.Cmd{
				What:  fmt.Sprintf("remove cluster chains from %s table %s", fam, t),
				Name:  fam + "-restore",
				Args:  []string{"--noflush"},
				Stdin: strings.NewReader(script),
			})
			if err != nil {
				return removed, err
			}
			removed += len(ours(before[fam+"/"+t], now))
		}
	}
	return removed, nil
}

// Leftovers lists chains of ours still present, as "family/table/chain".
func Leftovers(ctx context.Context, r *command.Runner, before Snapshot) ([]string, error) {
	var left []string
	for _, fam := range families {
		for _, t := range tables {
			now, err := readTable(ctx, r, fam, t)
			if err != nil {
				return nil, err
			}
			for c := range ours(before[fam+"/"+t], now) {
				left = append(left, fam+"/"+t+"/"+c)
			}
		}
	}
	sort.Strings(left)
	return left, nil
}
