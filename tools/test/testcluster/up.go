package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scalable-app/tools/internal/aptget"
	"scalable-app/tools/internal/cachedir"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/test/testcluster/build"
	"scalable-app/tools/test/testcluster/network"
	"scalable-app/tools/test/testcluster/pki"
)

// debianPackages are installed when missing.
var debianPackages = []string{
	"containerd", "runc", "containernetworking-plugins", "iptables", "iproute2", "conntrack", "etcd-server",
}

// Up starts the cluster, or finds it up. It is safe to run again at any
// time, including after the cluster's processes were killed.
func (c *Cluster) Up(ctx context.Context) error {
	if err := c.requireRoot(); err != nil {
		return err
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	for _, d := range []string{c.cfg.StateDir, c.cfg.LogDir(), c.cfg.PIDDir(), c.cfg.ConfigDir(), c.cfg.BinDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create state dir: %w", err)
		}
	}
	closeLog, err := c.openCommandLog()
	if err != nil {
		return err
	}
	defer closeLog()
	defer c.ready.close()

	if c.allRunning() && c.check(ctx) == nil {
		// Keep the ingress controller in step with this harness's manifest
		// (a no-op unless the harness changed since the cluster started).
		if err := c.applyIngress(ctx, "update the ingress controller"); err != nil {
			return err
		}
		c.out.Printf("cluster already up")
		c.printInfo()
		return nil
	}
	c.out.Printf("test cluster: Kubernetes %s, state in %s, commands logged to %s",
		c.cfg.KubernetesVersion, c.cfg.StateDir, filepath.Join(c.cfg.LogDir(), "commands.log"))

	st := &startState{}
	// No ctr process of the background import outlives the command.
	defer st.stopImport()
	for _, s := range c.upSteps(st) {
		if err := c.out.Step(s.name, func() error { return s.run(ctx) }); err != nil {
			if st.daemonsStarted {
				return c.withLogTails(err)
			}
			return err
		}
	}
	c.out.Printf("cluster up in %s", c.out.Elapsed().Round(100*time.Millisecond))
	c.printInfo()
	return nil
}

// startState is what the start steps hand on to later ones.
type startState struct {
	daemonsStarted bool
	kubeletStart   time.Time // the node's Ready status must be at least this new

	busyboxVersion string // of Debian's busybox-static, the helper image's content

	cancelImport context.CancelFunc
	importDone   chan struct{}
	importErr    error
}

func (s *startState) stopImport() {
	if s.cancelImport != nil {
		s.cancelImport()
		<-s.importDone
	}
}

// upSteps are the steps of a start, in order, as kind's create actions.
func (c *Cluster) upSteps(st *startState) []step {
	// Every daemon is watched while the later steps wait: a crash fails fast.
	var all []string
	for _, d := range c.daemons() {
		all = append(all, d.name)
	}
	return []step{
		{"Debian packages", c.ensurePackages},
		{"binaries and images", func(ctx context.Context) error { return c.ensureBinaries(ctx, st) }},
		{"record the host's iptables and sysctls", c.recordHost},
		{"node bridge " + c.cfg.NodeBridge + " and sysctls", c.prepareNetwork},
		{"certificates, configuration and cgroup root", c.prepareFiles},
		{"start etcd and containerd", func(context.Context) error {
			st.daemonsStarted = true
			return c.startAll("etcd", "containerd")
		}},
		{"wait for containerd", func(ctx context.Context) error {
			return c.waitFor(ctx, "containerd", 30*time.Second, []string{"containerd"}, c.ready.containerd)
		}},
		{"pause image", func(ctx context.Context) error {
			return c.importImage(ctx, c.cfg.PauseImage(), filepath.Join(c.cfg.PauseCacheDir(), "pause.tar"))
		}},
		{"start importing the Traefik, CoreDNS, local-path-provisioner and BusyBox images", func(ctx context.Context) error {
			// Traefik's image is large: import them while the control plane starts.
			importCtx, cancel := context.WithCancel(ctx)
			st.cancelImport, st.importDone = cancel, make(chan struct{})
			go func() {
				defer close(st.importDone)
				st.importErr = c.importComponentImages(importCtx, st.busyboxVersion)
			}()
			return nil
		}},
		{"wait for etcd", func(ctx context.Context) error {
			return c.waitFor(ctx, "etcd", 60*time.Second, []string{"etcd"}, c.ready.etcd)
		}},
		{"start kube-apiserver", func(context.Context) error { return c.startAll("kube-apiserver") }},
		{"wait for kube-apiserver", func(ctx context.Context) error {
			return c.waitFor(ctx, "kube-apiserver", 120*time.Second, []string{"kube-apiserver"}, c.ready.apiServer)
		}},
		{"start kube-controller-manager, kube-scheduler, kubelet and kube-proxy", func(context.Context) error {
			kubelet, err := c.daemonPIDFile("kubelet")
			if err != nil {
				return err
			}
			st.kubeletStart = time.Now()
			if c.host.alive(kubelet) != 0 {
				st.kubeletStart = time.Time{} // a running kubelet's status is current
			}
			return c.startAll("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
		}},
		{"wait for node " + c.cfg.NodeName + " Ready", func(ctx context.Context) error {
			err := c.waitFor(ctx, "node Ready", 180*time.Second, all, func(ctx context.Context) error {
				return c.ready.node(ctx, st.kubeletStart)
			})
			if err == nil {
				c.out.Printf("node Ready %s after start", c.out.Elapsed().Round(100*time.Millisecond))
			}
			return err
		}},
		{"wait for kube-proxy and the default service account", func(ctx context.Context) error {
			return c.waitFor(ctx, "kube-proxy", 60*time.Second, all, func(ctx context.Context) error {
				if err := c.ready.kubeProxy(ctx); err != nil {
					return err
				}
				return c.ready.defaultServiceAccount(ctx)
			})
		}},
		{"component images", func(context.Context) error {
			<-st.importDone
			return st.importErr
		}},
		{"apply CoreDNS, local-path-provisioner and Traefik", func(ctx context.Context) error {
			if err := c.applyAddons(ctx, st.busyboxVersion); err != nil {
				return err
			}
			return c.applyIngress(ctx, "install the ingress controller")
		}},
		{"cluster DNS (CoreDNS, Service kube-dns on " + c.cfg.DNSServiceIP + ")", func(ctx context.Context) error {
			return c.waitFor(ctx, "CoreDNS", 120*time.Second, all, func(ctx context.Context) error {
				return c.ready.deployment(ctx, "kube-system", "coredns")
			})
		}},
		{"default StorageClass " + c.cfg.StorageClass + " (local-path-provisioner, volumes in " + c.cfg.LocalPathDir() + ")", func(ctx context.Context) error {
			return c.waitFor(ctx, "local-path-provisioner", 120*time.Second, all, func(ctx context.Context) error {
				return c.ready.deployment(ctx, "local-path-storage", "local-path-provisioner")
			})
		}},
		{"ingress controller (Traefik, class nginx) on " + c.cfg.IngressAddr(), func(ctx context.Context) error {
			return c.waitFor(ctx, "ingress controller", 180*time.Second, all, func(ctx context.Context) error {
				if err := c.ready.deployment(ctx, "ingress-nginx", "ingress-nginx-controller"); err != nil {
					return err
				}
				return c.ready.ingressServing(ctx)
			})
		}},
	}
}

// allRunning reports whether every daemon's recorded process is alive.
func (c *Cluster) allRunning() bool {
	for _, d := range c.daemons() {
		if c.host.alive(c.pidFile(d)) == 0 {
			return false
		}
	}
	return true
}

func (c *Cluster) ensurePackages(ctx context.Context) error {
	return aptget.Install(ctx, c.run, c.stdout, debianPackages...)
}

// ensureBinaries takes the binaries and images from the cache, building on a
// miss, and links kubectl into the state dir.
func (c *Cluster) ensureBinaries(ctx context.Context, st *startState) error {
	b := build.Builder{Runner: c.run, SourceDir: c.sourceDir}
	v, err := aptget.Candidate(ctx, c.run, "busybox-static")
	if err != nil {
		return fmt.Errorf("the storage provisioner's helper image: %w", err)
	}
	st.busyboxVersion = v
	steps := []struct {
		name string
		dir  string
		fn   func() error
	}{
		{"Kubernetes " + c.cfg.KubernetesVersion + " binaries", c.cfg.KubernetesCacheDir(), func() error {
			return b.Kubernetes(ctx, c.cfg.KubernetesCacheDir(), c.cfg.KubernetesVersion)
		}},
		{"pause image", c.cfg.PauseCacheDir(), func() error {
			return b.Pause(ctx, c.cfg.PauseCacheDir(), c.cfg.PauseImage())
		}},
		{"Traefik " + c.cfg.TraefikVersion + " image", c.cfg.TraefikCacheDir(), func() error {
			return b.Traefik(ctx, c.cfg.TraefikCacheDir(), c.cfg.TraefikVersion, c.cfg.TraefikImage())
		}},
		{"CoreDNS " + c.cfg.CoreDNSVersion + " image", c.cfg.CoreDNSCacheDir(), func() error {
			return b.CoreDNS(ctx, c.cfg.CoreDNSCacheDir(), c.cfg.CoreDNSVersion, c.cfg.CoreDNSImage())
		}},
		{"local-path-provisioner " + c.cfg.LocalPathVersion + " image", c.cfg.LocalPathCacheDir(), func() error {
			return b.LocalPath(ctx, c.cfg.LocalPathCacheDir(), c.cfg.LocalPathVersion, c.cfg.LocalPathImage())
		}},
		{"BusyBox image (Debian busybox-static " + v + ")", c.cfg.BusyboxCacheDir(v), func() error {
			return b.Busybox(ctx, c.cfg.BusyboxCacheDir(v), v, BusyboxImage(v))
		}},
	}
	for _, s := range steps {
		if cachedir.Complete(s.dir) {
			c.out.Printf("%s: cached in %s", s.name, s.dir)
			continue
		}
		if err := c.out.Step("build "+s.name+" (cache miss; minutes when the Go build cache is cold)", s.fn); err != nil {
			return err
		}
	}
	link := c.cfg.KubectlPath()
	_ = os.Remove(link)
	if err := os.Symlink(filepath.Join(c.cfg.KubernetesCacheDir(), "kubectl"), link); err != nil {
		return fmt.Errorf("link kubectl: %w", err)
	}
	return nil
}

// recordHost records what teardown must restore: the host's iptables
// chains and sysctls before the cluster's first start (kept across restarts).
func (c *Cluster) recordHost(ctx context.Context) error {
	snap := filepath.Join(c.cfg.StateDir, "host-iptables-before.json")
	if _, err := os.Stat(snap); errors.Is(err, os.ErrNotExist) {
		s, err := network.TakeSnapshot(ctx, c.run)
		if err != nil {
			return err
		}
		if err := s.Save(snap); err != nil {
			return err
		}
	}
	return c.host.saveSysctls(filepath.Join(c.cfg.StateDir, "host-sysctls-before.json"))
}

// prepareNetwork sets the sysctls the node needs and sets up its bridge.
func (c *Cluster) prepareNetwork(ctx context.Context) error {
	if err := c.host.bridgeNetfilter(); err != nil {
		return err
	}
	for _, kv := range [][2]string{
		{"net/ipv4/ip_forward", "1"},
		{"net/bridge/bridge-nf-call-iptables", "1"},
		{"net/bridge/bridge-nf-call-ip6tables", "1"},
	} {
		if err := c.host.setSysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return network.EnsureBridge(ctx, c.run, c.cfg.NodeBridge, c.cfg.NodeIP)
}

// prepareFiles writes the certificates, kubeconfig and daemon configuration
// into the state dir and creates the kubelet's cgroup root.
func (c *Cluster) prepareFiles(context.Context) error {
	err := pki.Ensure(c.cfg.PKIDir(), pki.Params{
		NodeName: c.cfg.NodeName, NodeIP: c.cfg.NodeIP, APIServiceIP: c.cfg.APIServiceIP,
		APIServerURL: c.cfg.APIServerURL(), ClusterName: "testcluster",
	})
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if err := copyFile(filepath.Join(c.cfg.PKIDir(), "admin.kubeconfig"), c.cfg.KubeconfigPath(), 0o600); err != nil {
		return err
	}
	if err := c.cfg.writeConfigs(); err != nil {
		return err
	}
	return c.host.ensureCgroupRoot(c.cfg.CgroupRoot)
}

func (c *Cluster) importImage(ctx context.Context, ref, archive string) error {
	st := c.store()
	has, err := st.Has(ctx, ref)
	if err != nil || has {
		return err
	}
	return c.out.Step("import "+ref, func() error { return st.ImportArchive(ctx, archive) })
}

// importComponentImages imports the in-cluster components' images, each
// only when containerd lacks it.
func (c *Cluster) importComponentImages(ctx context.Context, busyboxVersion string) error {
	for _, im := range []struct{ ref, archive string }{
		{c.cfg.TraefikImage(), filepath.Join(c.cfg.TraefikCacheDir(), "traefik.tar")},
		{c.cfg.CoreDNSImage(), filepath.Join(c.cfg.CoreDNSCacheDir(), "coredns.tar")},
		{c.cfg.LocalPathImage(), filepath.Join(c.cfg.LocalPathCacheDir(), "local-path-provisioner.tar")},
		{BusyboxImage(busyboxVersion), filepath.Join(c.cfg.BusyboxCacheDir(busyboxVersion), "busybox.tar")},
	} {
		if err := c.importImage(ctx, im.ref, im.archive); err != nil {
			return err
		}
	}
	return nil
}

// applyAddons applies the manifests of CoreDNS and the storage provisioner.
func (c *Cluster) applyAddons(ctx context.Context, busyboxVersion string) error {
	if err := os.MkdirAll(c.cfg.LocalPathDir(), 0o755); err != nil {
		return fmt.Errorf("create the volumes' directory: %w", err)
	}
	dns, err := c.cfg.render("coredns.yaml.tmpl")
	if err != nil {
		return err
	}
	if err := c.kubectlApply(ctx, "install CoreDNS", dns); err != nil {
		return err
	}
	d := c.cfg.templateData()
	d.HelperImage = BusyboxImage(busyboxVersion)
	storage, err := c.cfg.renderData("storage.yaml.tmpl", d)
	if err != nil {
		return err
	}
	return c.kubectlApply(ctx, "install the storage provisioner", storage)
}

// kubectlApply applies a manifest with the cluster's own kubectl.
func (c *Cluster) kubectlApply(ctx context.Context, what string, manifest []byte) error {
	_, err := c.run.Exec(ctx, command.Cmd{
		What: what, Name: c.cfg.KubectlPath(),
		Args:  []string{"--kubeconfig", c.cfg.KubeconfigPath(), "apply", "-f", "-"},
		Stdin: strings.NewReader(string(manifest)),
	})
	return err
}

// applyIngress applies the ingress controller's manifest.
func (c *Cluster) applyIngress(ctx context.Context, what string) error {
	manifest, err := c.cfg.render("ingress.yaml.tmpl")
	if err != nil {
		return err
	}
	return c.kubectlApply(ctx, what, manifest)
}

// check returns nil when the cluster is fully usable.
func (c *Cluster) check(ctx context.Context) error {
	if err := c.ready.apiServer(ctx); err != nil {
		return fmt.Errorf("API server: %w", err)
	}
	if err := c.ready.node(ctx, time.Time{}); err != nil {
		return err
	}
	if err := c.ready.kubeProxy(ctx); err != nil {
		return fmt.Errorf("kube-proxy: %w", err)
	}
	if err := c.ready.ingressServing(ctx); err != nil {
		return fmt.Errorf("ingress: %w", err)
	}
	// A cluster started by an older harness has neither: Up completes it.
	if err := c.ready.deployment(ctx, "kube-system", "coredns"); err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	if err := c.ready.deployment(ctx, "local-path-storage", "local-path-provisioner"); err != nil {
		return fmt.Errorf("storage provisioner: %w", err)
	}
	return nil
}

func (c *Cluster) printInfo() {
	fmt.Fprintf(c.stdout, `
  export KUBECONFIG=%s
  kubectl %s:  %s
  ingress:       http://%s  (e.g. curl -H 'Host: scalable.local' http://%s/)
  load an image: make cluster-load IMAGE=scalable-app:latest
`, c.cfg.KubeconfigPath(), c.cfg.KubernetesVersion, c.cfg.KubectlPath(), c.cfg.IngressAddr(), c.cfg.IngressAddr())
}

// withLogTails adds the last lines of every daemon log to a start failure.
func (c *Cluster) withLogTails(err error) error {
	var b strings.Builder
	for _, d := range c.daemons() {
		data, rerr := os.ReadFile(filepath.Join(c.cfg.LogDir(), d.name+".log"))
		if rerr != nil {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s.log (last lines)\n%s", d.name, command.LastLines(string(data), 5))
	}
	return fmt.Errorf("%w%s\n(the cluster is left as it is for inspection; `make cluster-down` removes it)", err, b.String())
}

func copyFile(from, to string, mode os.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		return fmt.Errorf("copy to %s: %w", to, err)
	}
	return nil
}
