package testcluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scalable-app/internal/testcluster/build"
	"scalable-app/internal/testcluster/network"
	"scalable-app/internal/testcluster/pki"
	"scalable-app/internal/testcluster/proc"
	"scalable-app/internal/testcluster/runner"
)

// debianPackages are installed when missing.
var debianPackages = []string{
	"containerd", "runc", "containernetworking-plugins", "iptables", "iproute2", "conntrack", "etcd-server",
}

// Up starts the cluster, or finds it up. It is safe to run again at any
// time, including after the cluster's processes were killed.
func (c *Cluster) Up(ctx context.Context) error {
	if err := requireRoot(); err != nil {
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

	if c.allRunning() && c.check(ctx) == nil {
		// Keep the ingress controller in step with this harness's manifest
		// (a no-op unless the harness changed since the cluster started).
		manifest, err := c.cfg.render("ingress.yaml.tmpl")
		if err != nil {
			return err
		}
		if err := c.kubectlApply(ctx, "update the ingress controller", manifest); err != nil {
			return err
		}
		c.out.Printf("cluster already up")
		c.printInfo()
		return nil
	}
	c.out.Printf("test cluster: Kubernetes %s, state in %s, commands logged to %s",
		c.cfg.KubernetesVersion, c.cfg.StateDir, filepath.Join(c.cfg.LogDir(), "commands.log"))

	if err := c.out.Step("Debian packages", func() error { return c.ensurePackages(ctx) }); err != nil {
		return err
	}
	if err := c.ensureBinaries(ctx); err != nil {
		return err
	}
	if err := c.prepareHost(ctx); err != nil {
		return err
	}
	if err := c.startControlPlane(ctx); err != nil {
		return c.withLogTails(err)
	}
	c.out.Printf("cluster up in %s", c.out.Elapsed().Round(100*time.Millisecond))
	c.printInfo()
	return nil
}

// allRunning reports whether every daemon's recorded process is alive.
func (c *Cluster) allRunning() bool {
	for _, d := range c.daemons() {
		if c.pidFile(d).Alive() == 0 {
			return false
		}
	}
	return true
}

func (c *Cluster) ensurePackages(ctx context.Context) error {
	var missing []string
	for _, p := range debianPackages {
		out, err := c.run.Output(ctx, "check Debian package "+p, "dpkg-query", "-W", "-f=${Status}", p)
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	c.out.Printf("installing %s", strings.Join(missing, " "))
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	// apt-get fails at once while another apt holds the dpkg lock: retry.
	// On a new machine the package lists may be missing or stale: refresh
	// them once.
	deadline := time.Now().Add(10 * time.Minute)
	updated := false
	for {
		_, err := c.run.Exec(ctx, runner.Cmd{
			What: "install Debian packages", Name: "apt-get", Args: args,
			Env: []string{"DEBIAN_FRONTEND=noninteractive"},
		})
		if err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "lock") && !updated {
			c.out.Printf("  apt-get install failed; refreshing the package lists (apt-get update)")
			if _, uerr := c.run.Exec(ctx, runner.Cmd{
				What: "refresh Debian package lists", Name: "apt-get", Args: []string{"update", "-q"},
				Env: []string{"DEBIAN_FRONTEND=noninteractive"},
			}); uerr != nil {
				return fmt.Errorf("%w (and apt-get update failed: %v)", err, uerr)
			}
			updated = true
			continue
		}
		if !strings.Contains(err.Error(), "lock") || time.Now().After(deadline) {
			return err
		}
		c.out.Printf("  dpkg is locked by another apt run; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

// ensureBinaries takes the binaries and images from the cache, building on a
// miss, and links kubectl into the state dir.
func (c *Cluster) ensureBinaries(ctx context.Context) error {
	b := build.Builder{Runner: c.run, SourceDir: c.sourceDir}
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
	}
	for _, s := range steps {
		if build.Cached(s.dir) {
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

// prepareHost records what teardown must restore, then sets up the node
// bridge, sysctls, certificates, configuration files and cgroup root.
func (c *Cluster) prepareHost(ctx context.Context) error {
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
	if err := network.SaveSysctls(filepath.Join(c.cfg.StateDir, "host-sysctls-before.json")); err != nil {
		return err
	}
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		return errors.New("the br_netfilter kernel module is not loaded (no /proc/sys/net/bridge): load it (modprobe br_netfilter) and retry")
	}
	for k, v := range map[string]string{
		"net/ipv4/ip_forward":                 "1",
		"net/bridge/bridge-nf-call-iptables":  "1",
		"net/bridge/bridge-nf-call-ip6tables": "1",
	} {
		if err := network.SetSysctl(k, v); err != nil {
			return err
		}
	}
	if err := network.EnsureBridge(ctx, c.run, c.cfg.NodeBridge, c.cfg.NodeIP); err != nil {
		return err
	}
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
	return proc.EnsureCgroupRoot(c.cfg.CgroupRoot)
}

func (c *Cluster) startControlPlane(ctx context.Context) error {
	if err := c.startAll("etcd", "containerd"); err != nil {
		return err
	}
	err := c.out.Step("containerd", func() error {
		return c.waitFor(ctx, "containerd", 30*time.Second, []string{"containerd"}, c.containerdListening)
	})
	if err != nil {
		return err
	}
	if err := c.importImage(ctx, c.cfg.PauseImage(), filepath.Join(c.cfg.PauseCacheDir(), "pause.tar")); err != nil {
		return err
	}
	// The Traefik image is large; import it while the control plane starts.
	// Every return below cancels the import and waits for it, so no ctr
	// process outlives the command.
	importCtx, cancelImport := context.WithCancel(ctx)
	traefikDone := make(chan struct{})
	var traefikErr error
	go func() {
		defer close(traefikDone)
		traefikErr = c.importImage(importCtx, c.cfg.TraefikImage(), filepath.Join(c.cfg.TraefikCacheDir(), "traefik.tar"))
	}()
	defer func() {
		cancelImport()
		<-traefikDone
	}()

	err = c.out.Step("etcd", func() error {
		return c.waitFor(ctx, "etcd", 60*time.Second, []string{"etcd"}, c.etcdHealthy)
	})
	if err != nil {
		return err
	}
	if err := c.startAll("kube-apiserver"); err != nil {
		return err
	}
	api, err := c.apiClient()
	if err != nil {
		return err
	}
	defer api.close()
	err = c.out.Step("kube-apiserver", func() error {
		return c.waitFor(ctx, "kube-apiserver", 120*time.Second, []string{"kube-apiserver"}, api.readyz)
	})
	if err != nil {
		return err
	}
	kubeletPID, err := c.daemonPIDFile("kubelet")
	if err != nil {
		return err
	}
	kubeletStart := time.Now()
	if kubeletPID.Alive() != 0 {
		kubeletStart = time.Time{} // a running kubelet's status is current
	}
	if err := c.startAll("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"); err != nil {
		return err
	}
	all := []string{"etcd", "containerd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}
	err = c.out.Step("node "+c.cfg.NodeName+" Ready", func() error {
		return c.waitFor(ctx, "node Ready", 180*time.Second, all, func(ctx context.Context) error {
			return api.nodeReady(ctx, c.cfg.NodeName, kubeletStart)
		})
	})
	if err != nil {
		return err
	}
	c.out.Printf("node Ready %s after start", c.out.Elapsed().Round(100*time.Millisecond))
	err = c.out.Step("kube-proxy and default service account", func() error {
		return c.waitFor(ctx, "kube-proxy", 60*time.Second, all, func(ctx context.Context) error {
			if err := c.kubeProxyHealthy(ctx); err != nil {
				return err
			}
			return api.defaultServiceAccount(ctx)
		})
	})
	if err != nil {
		return err
	}
	<-traefikDone
	if traefikErr != nil {
		return traefikErr
	}
	return c.out.Step("ingress controller (Traefik, class nginx) on "+c.cfg.IngressAddr(), func() error {
		manifest, err := c.cfg.render("ingress.yaml.tmpl")
		if err != nil {
			return err
		}
		if err := c.kubectlApply(ctx, "install the ingress controller", manifest); err != nil {
			return err
		}
		return c.waitFor(ctx, "ingress controller", 180*time.Second, all, func(ctx context.Context) error {
			if err := api.deploymentAvailable(ctx, "ingress-nginx", "ingress-nginx-controller"); err != nil {
				return err
			}
			return c.ingressServing(ctx)
		})
	})
}

func (c *Cluster) importImage(ctx context.Context, ref, archive string) error {
	st := c.store()
	has, err := st.Has(ctx, ref)
	if err != nil || has {
		return err
	}
	return c.out.Step("import "+ref, func() error { return st.ImportArchive(ctx, archive) })
}

// kubectlApply applies a manifest with the cluster's own kubectl.
func (c *Cluster) kubectlApply(ctx context.Context, what string, manifest []byte) error {
	_, err := c.run.Exec(ctx, runner.Cmd{
		What: what, Name: c.cfg.KubectlPath(),
		Args:  []string{"--kubeconfig", c.cfg.KubeconfigPath(), "apply", "-f", "-"},
		Stdin: strings.NewReader(string(manifest)),
	})
	return err
}

// ingressServing returns nil when Traefik answers on the ingress address: an
// unknown host gets its 404.
func (c *Cluster) ingressServing(ctx context.Context) error {
	status, _, err := httpGet(ctx, http.DefaultClient, "http://"+c.cfg.IngressAddr()+"/", "testcluster-probe.invalid")
	if err != nil {
		return err
	}
	if status != http.StatusNotFound {
		return fmt.Errorf("ingress answered %d to an unknown host, want 404", status)
	}
	return nil
}

// check returns nil when the cluster is fully usable.
func (c *Cluster) check(ctx context.Context) error {
	api, err := c.apiClient()
	if err != nil {
		return err
	}
	defer api.close()
	if err := api.readyz(ctx); err != nil {
		return fmt.Errorf("API server: %w", err)
	}
	if err := api.nodeReady(ctx, c.cfg.NodeName, time.Time{}); err != nil {
		return err
	}
	if err := c.kubeProxyHealthy(ctx); err != nil {
		return fmt.Errorf("kube-proxy: %w", err)
	}
	if err := c.ingressServing(ctx); err != nil {
		return fmt.Errorf("ingress: %w", err)
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
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		fmt.Fprintf(&b, "\n--- %s.log (last lines)\n%s", d.name, strings.Join(lines, "\n"))
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
