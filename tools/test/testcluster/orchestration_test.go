package testcluster

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/test/testcluster/proc"
)

// fakeHost stands in for the machine: a process is alive when a PID file
// names it and it has not been terminated.
type fakeHost struct {
	mu         sync.Mutex
	dead       map[int]bool
	terminated []int
	links      map[string]bool
	mountsErr  error
}

func newFakeHost() *fakeHost { return &fakeHost{dead: map[int]bool{}, links: map[string]bool{}} }

func (h *fakeHost) isRoot() bool { return true }
func (h *fakeHost) alive(pf proc.PIDFile) int {
	b, err := os.ReadFile(pf.Path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || !h.running(pid) {
		return 0
	}
	return pid
}
func (h *fakeHost) running(pid int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.dead[pid]
}
func (h *fakeHost) terminate(pid int, _ time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.terminated = append(h.terminated, pid)
	h.dead[pid] = true
}
func (h *fakeHost) withArg(string) []int                    { return nil }
func (h *fakeHost) bridgeNetfilter() error                  { return nil }
func (h *fakeHost) setSysctl(string, string) error          { return nil }
func (h *fakeHost) saveSysctls(string) error                { return nil }
func (h *fakeHost) restoreSysctls(string) ([]string, error) { return nil, nil }
func (h *fakeHost) ensureCgroupRoot(string) error           { return nil }
func (h *fakeHost) killCgroupTree(string) (int, error)      { return 0, nil }
func (h *fakeHost) unmountUnder(string) (int, error)        { return 0, nil }
func (h *fakeHost) mountsUnder(string) ([]string, error)    { return nil, h.mountsErr }
func (h *fakeHost) linkExists(name string) bool             { return h.links[name] }

// readyAtOnce answers every probe with ready.
type readyAtOnce struct{}

func (readyAtOnce) etcd(context.Context) error                       { return nil }
func (readyAtOnce) containerd(context.Context) error                 { return nil }
func (readyAtOnce) apiServer(context.Context) error                  { return nil }
func (readyAtOnce) node(context.Context, time.Time) error            { return nil }
func (readyAtOnce) kubeProxy(context.Context) error                  { return nil }
func (readyAtOnce) defaultServiceAccount(context.Context) error      { return nil }
func (readyAtOnce) deployment(context.Context, string, string) error { return nil }
func (readyAtOnce) ingressServing(context.Context) error             { return nil }
func (readyAtOnce) close()                                           {}

// testConfig puts every directory the cluster writes to under a temp dir.
func testConfig(t *testing.T) Config {
	dir := t.TempDir()
	cfg := ConfigFromEnv(func(string) string { return "" })
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.CacheDir = filepath.Join(dir, "cache")
	cfg.NetnsDir = filepath.Join(dir, "netns")
	cfg.CNIResultsDir = filepath.Join(dir, "cni-results")
	cfg.ShimSocketDir = filepath.Join(dir, "shims")
	cfg.ContainerLogDir = filepath.Join(dir, "container-logs")
	// Interfaces are looked up on the machine: names no machine has.
	cfg.NodeBridge, cfg.CNIBridge = "tc-test-node9", "tc-test-cni9"
	for _, d := range []string{cfg.NetnsDir, cfg.CNIResultsDir, cfg.ShimSocketDir, cfg.ContainerLogDir} {
		mkdir(t, d)
	}
	return cfg
}

func mkdir(t *testing.T, d string) {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	mkdir(t, filepath.Dir(path))
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testCluster(cfg Config, fake *command.Fake, h *fakeHost, out io.Writer) *Cluster {
	c := New(cfg, command.New(fake, nil), out, "")
	c.host, c.ready = h, readyAtOnce{}
	return c
}

// stepNames are the steps the progress output announced, in order.
func stepNames(out string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\[[ 0-9.]+s\] (.*) \.\.\.$`).FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	return names
}

func indexOf(t *testing.T, lines []string, prefix string) int {
	t.Helper()
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	t.Fatalf("no command %q in:\n%s", prefix, strings.Join(lines, "\n"))
	return -1
}

func TestUpRunsItsStepsInOrder(t *testing.T) {
	cfg := testConfig(t)
	const busybox = "1:1.35.0-4+b1"
	for _, d := range []string{cfg.KubernetesCacheDir(), cfg.PauseCacheDir(), cfg.TraefikCacheDir(),
		cfg.CoreDNSCacheDir(), cfg.LocalPathCacheDir(), cfg.BusyboxCacheDir(busybox)} {
		write(t, filepath.Join(d, ".complete"), "") // cache hits: nothing is built
	}
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		switch c.Name {
		case "dpkg-query":
			return "install ok installed", nil
		case "apt-cache":
			return "busybox-static:\n  Installed: (none)\n  Candidate: " + busybox + "\n", nil
		}
		return "", nil
	}}
	var out strings.Builder
	h := newFakeHost()
	if err := testCluster(cfg, fake, h, &out).Up(context.Background()); err != nil {
		t.Fatalf("Up: %v\n%s", err, out.String())
	}
	defer func() {
		// Up again on the cluster it started: it finds it up and only
		// re-applies the ingress controller's manifest.
		again := &command.Fake{}
		var out strings.Builder
		if err := testCluster(cfg, again, h, &out).Up(context.Background()); err != nil {
			t.Fatalf("second Up: %v", err)
		}
		want := []string{cfg.KubectlPath() + " --kubeconfig " + cfg.KubeconfigPath() + " apply -f -"}
		if !slices.Equal(again.Lines(), want) || !strings.Contains(out.String(), "cluster already up") {
			t.Errorf("second Up ran %q and said:\n%s\nwant only %q and \"cluster already up\"", again.Lines(), out.String(), want)
		}
	}()

	wantSteps := []string{
		"Debian packages",
		"binaries and images",
		"record the host's iptables and sysctls",
		"node bridge tc-test-node9 and sysctls",
		"certificates, configuration and cgroup root",
		"start etcd and containerd",
		"wait for containerd",
		"pause image",
		"start importing the Traefik, CoreDNS, local-path-provisioner and BusyBox images",
		"wait for etcd",
		"start kube-apiserver",
		"wait for kube-apiserver",
		"start kube-controller-manager, kube-scheduler, kubelet and kube-proxy",
		"wait for node testcluster-node Ready",
		"wait for kube-proxy and the default service account",
		"component images",
		"apply CoreDNS, local-path-provisioner and Traefik",
		"cluster DNS (CoreDNS, Service kube-dns on 10.215.0.10)",
		"default StorageClass standard (local-path-provisioner, volumes in " + cfg.LocalPathDir() + ")",
		"ingress controller (Traefik, class nginx) on 127.0.0.1:30080",
	}
	var got []string
	for _, s := range stepNames(out.String()) {
		if !strings.HasPrefix(s, "import ") { // the image imports' own sub-steps
			got = append(got, s)
		}
	}
	if !slices.Equal(got, wantSteps) {
		t.Errorf("steps:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(wantSteps, "\n  "))
	}

	// The daemons start in dependency order.
	var started []string
	for _, c := range fake.Calls() {
		if slices.Contains(c.Args, "--config="+filepath.Join(cfg.ConfigDir(), "containerd.toml")) || strings.HasPrefix(filepath.Base(c.Name), "kube") && c.Name != cfg.KubectlPath() || c.Name == "/usr/bin/etcd" {
			started = append(started, filepath.Base(c.Name))
		}
	}
	wantStarted := []string{"etcd", "containerd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}
	if !slices.Equal(started, wantStarted) {
		t.Errorf("daemons started %q, want %q", started, wantStarted)
	}
	for _, d := range wantStarted {
		if _, err := os.Stat(filepath.Join(cfg.PIDDir(), d)); err != nil {
			t.Errorf("no pid file for %s: %v", d, err)
		}
	}

	lines := fake.Lines()
	snapshot := indexOf(t, lines, "iptables-save -t filter")
	bridge := indexOf(t, lines, "ip link add tc-test-node9 type bridge")
	etcd := indexOf(t, lines, "/usr/bin/etcd")
	pause := indexOf(t, lines, "ctr --address "+cfg.ContainerdSocket()+" --namespace k8s.io images import "+filepath.Join(cfg.PauseCacheDir(), "pause.tar"))
	imported := -1
	for _, a := range []string{filepath.Join(cfg.TraefikCacheDir(), "traefik.tar"), filepath.Join(cfg.CoreDNSCacheDir(), "coredns.tar"),
		filepath.Join(cfg.LocalPathCacheDir(), "local-path-provisioner.tar"), filepath.Join(cfg.BusyboxCacheDir(busybox), "busybox.tar")} {
		imported = max(imported, indexOf(t, lines, "ctr --address "+cfg.ContainerdSocket()+" --namespace k8s.io images import "+a))
	}
	apiserver := indexOf(t, lines, filepath.Join(cfg.KubernetesCacheDir(), "kube-apiserver"))
	apply := indexOf(t, lines, cfg.KubectlPath()+" --kubeconfig "+cfg.KubeconfigPath()+" apply -f -")
	switch {
	case !(snapshot < bridge && bridge < etcd):
		t.Error("the host's iptables must be recorded before the bridge, and both before any daemon starts")
	case !(etcd < pause && pause < apiserver):
		t.Error("the pause image must be imported after containerd starts and before the API server")
	case !(imported < apply && apply == len(lines)-3):
		t.Error("CoreDNS, the storage provisioner and the ingress controller must be applied last, after their images are in")
	}
}

func TestDownAfterPartialStartRemovesOnlyWhatTheClusterMade(t *testing.T) {
	cfg := testConfig(t)
	// A start that died after etcd, containerd and the kubelet: etcd and the
	// kubelet still run, containerd's process is gone.
	h := newFakeHost()
	write(t, filepath.Join(cfg.PIDDir(), "etcd"), "501")
	write(t, filepath.Join(cfg.PIDDir(), "kubelet"), "502")
	write(t, filepath.Join(cfg.PIDDir(), "containerd"), "503")
	h.dead[503] = true
	h.links[cfg.NodeBridge] = true // the CNI bridge was never created

	// The host had KUBE-OTHER and CNI-HOST before the cluster first started.
	write(t, filepath.Join(cfg.StateDir, "host-iptables-before.json"),
		`{"iptables/nat":{"chains":["PREROUTING","POSTROUTING","KUBE-OTHER","CNI-HOST"],"rules":["-A POSTROUTING -j KUBE-OTHER"]}}`)
	natNow := "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-OTHER - [0:0]\n:CNI-HOST - [0:0]\n:KUBE-SERVICES - [0:0]\n" +
		"-A PREROUTING -j KUBE-SERVICES\n-A POSTROUTING -j KUBE-OTHER\n-A POSTROUTING -j CNI-HOST\nCOMMIT\n"

	// Two pinned namespaces: one holds a pod address of the cluster.
	write(t, filepath.Join(cfg.NetnsDir, "cni-ours"), "")
	write(t, filepath.Join(cfg.NetnsDir, "cni-theirs"), "")

	// CNI results: two of the cluster's sandbox, one of another network.
	for _, f := range []string{cfg.CNINetwork + "-abc-eth0", "cni-loopback-abc-lo", "othernet-xyz-eth0"} {
		write(t, filepath.Join(cfg.CNIResultsDir, f), "{}")
	}
	podLog := filepath.Join(cfg.StateDir, "pod-logs", "p", "c.log")
	write(t, podLog, "")
	if err := os.Symlink(podLog, filepath.Join(cfg.ContainerLogDir, "ours.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/elsewhere/c.log", filepath.Join(cfg.ContainerLogDir, "theirs.log")); err != nil {
		t.Fatal(err)
	}

	var script string
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		line := c.Line()
		switch {
		case line == "iptables-save -t nat":
			return natNow, nil
		case line == "ip -n cni-ours -4 -o addr show":
			return "3: eth0    inet 10.214.0.7/24 brd 10.214.0.255 scope global eth0\n", nil
		case line == "ip -n cni-theirs -4 -o addr show":
			return "3: eth0    inet 10.88.0.3/16 brd 10.88.255.255 scope global eth0\n", nil
		case c.Name == "iptables-restore":
			// The fake has already drained stdin; read it again from the start.
			rs := c.Stdin.(io.ReadSeeker)
			if _, err := rs.Seek(0, io.SeekStart); err != nil {
				return "", err
			}
			b, err := io.ReadAll(rs)
			script += string(b)
			return "", err
		}
		return "", nil
	}}
	var out strings.Builder
	if err := testCluster(cfg, fake, h, &out).Down(context.Background()); err != nil {
		t.Fatalf("Down: %v\n%s", err, out.String())
	}

	// Only the live daemons were stopped, node agent before etcd.
	if !slices.Equal(h.terminated, []int{502, 501}) {
		t.Errorf("terminated %v, want the kubelet (502) then etcd (501)", h.terminated)
	}
	lines := fake.Lines()
	if !slices.Contains(lines, "ip netns delete cni-ours") || slices.Contains(lines, "ip netns delete cni-theirs") {
		t.Errorf("want only cni-ours deleted:\n%s", strings.Join(lines, "\n"))
	}
	if !slices.Contains(lines, "ip link del "+cfg.NodeBridge) || slices.Contains(lines, "ip link del "+cfg.CNIBridge) {
		t.Errorf("want only the node bridge deleted:\n%s", strings.Join(lines, "\n"))
	}
	if indexOf(t, lines, "ip -n cni-ours") > indexOf(t, lines, "ip netns delete cni-ours") {
		t.Error("namespaces must be found before they are deleted")
	}
	if !strings.Contains(script, "-X KUBE-SERVICES\n") || !strings.Contains(script, "-D PREROUTING -j KUBE-SERVICES\n") {
		t.Errorf("the cluster's chain is not removed:\n%s", script)
	}
	for _, keep := range []string{"KUBE-OTHER", "CNI-HOST"} {
		if strings.Contains(script, keep) {
			t.Errorf("the script touches the host's %s:\n%s", keep, script)
		}
	}
	if n := strings.Count(strings.Join(lines, "\n"), "iptables-restore"); n != 1 {
		t.Errorf("iptables-restore ran %d times, want once (only nat had a chain of the cluster)", n)
	}

	for path, want := range map[string]bool{
		filepath.Join(cfg.CNIResultsDir, cfg.CNINetwork+"-abc-eth0"): false,
		filepath.Join(cfg.CNIResultsDir, "cni-loopback-abc-lo"):      false,
		filepath.Join(cfg.CNIResultsDir, "othernet-xyz-eth0"):        true,
		filepath.Join(cfg.ContainerLogDir, "ours.log"):               false,
		filepath.Join(cfg.ContainerLogDir, "theirs.log"):             true,
		cfg.StateDir: false,
	} {
		if _, err := os.Lstat(path); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", path, err == nil, want)
		}
	}

	// The steps ran in their table's order, and each was announced.
	var want []string
	for _, s := range testCluster(cfg, fake, h, io.Discard).downSteps(&stopState{}) {
		want = append(want, s.name)
	}
	if got := stepNames(out.String()); !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
	if want[0] != "stop kube-proxy, kubelet, kube-scheduler and kube-controller-manager" || !strings.HasPrefix(want[len(want)-1], "restore sysctls") {
		t.Errorf("node agents must stop first and sysctls be restored last: %q", want)
	}
}

func TestDownKeepsTheStateWhenMountsCannotBeRead(t *testing.T) {
	cfg := testConfig(t)
	write(t, filepath.Join(cfg.StateDir, "kubeconfig"), "")
	h := newFakeHost()
	h.mountsErr = errors.New("read mounts: permission denied")
	err := testCluster(cfg, &command.Fake{}, h, io.Discard).Down(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot tell whether mounts remain") {
		t.Fatalf("Down = %v, want it to refuse removing the state dir", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "kubeconfig")); err != nil {
		t.Fatalf("the state dir was removed although its mounts were unknown: %v", err)
	}
}

func TestRemoveFilesReportsErrors(t *testing.T) {
	cfg := testConfig(t)
	// A directory in place of a cache file cannot be removed with os.Remove.
	write(t, filepath.Join(cfg.CNIResultsDir, cfg.CNINetwork+"-abc-eth0", "x"), "")
	c := testCluster(cfg, &command.Fake{}, newFakeHost(), io.Discard)
	if err := c.removeFiles(); err == nil {
		t.Fatal("a cache entry that could not be removed gave no error")
	}
}
