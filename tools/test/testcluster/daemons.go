package testcluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/test/testcluster/proc"
)

// daemon is one long-running process of the cluster.
type daemon struct {
	name string
	bin  string
	args []string
}

// hostPath is what the daemons find their helpers with (runc, the shim,
// iptables, conntrack, mount).
const hostPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// daemons lists every daemon in start order.
func (c *Cluster) daemons() []daemon {
	cfg := c.cfg
	pki := cfg.PKIDir()
	k8s := func(n string) string { return filepath.Join(cfg.KubernetesCacheDir(), n) }
	etcdURL := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	kc := func(n string) string { return filepath.Join(pki, n+".kubeconfig") }
	return []daemon{
		{name: "etcd", bin: "/usr/bin/etcd", args: []string{
			"--name=testcluster",
			"--data-dir=" + filepath.Join(cfg.StateDir, "etcd"),
			"--listen-client-urls=" + etcdURL(cfg.EtcdClientPort),
			"--advertise-client-urls=" + etcdURL(cfg.EtcdClientPort),
			"--listen-peer-urls=" + etcdURL(cfg.EtcdPeerPort),
			"--initial-advertise-peer-urls=" + etcdURL(cfg.EtcdPeerPort),
			"--initial-cluster=testcluster=" + etcdURL(cfg.EtcdPeerPort),
			"--log-level=warn",
		}},
		{name: "containerd", bin: "/usr/bin/containerd", args: []string{
			"--config=" + filepath.Join(cfg.ConfigDir(), "containerd.toml"),
		}},
		{name: "kube-apiserver", bin: k8s("kube-apiserver"), args: []string{
			"--etcd-servers=" + etcdURL(cfg.EtcdClientPort),
			"--advertise-address=" + cfg.NodeIP,
			"--bind-address=" + cfg.NodeIP,
			"--secure-port=" + strconv.Itoa(cfg.APIServerPort),
			"--allow-privileged=true",
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			"--client-ca-file=" + pki + "/ca.crt",
			"--tls-cert-file=" + pki + "/apiserver.crt",
			"--tls-private-key-file=" + pki + "/apiserver.key",
			"--kubelet-client-certificate=" + pki + "/apiserver-kubelet-client.crt",
			"--kubelet-client-key=" + pki + "/apiserver-kubelet-client.key",
			"--kubelet-certificate-authority=" + pki + "/ca.crt",
			"--kubelet-preferred-address-types=InternalIP,Hostname",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + pki + "/sa.pub",
			"--service-account-signing-key-file=" + pki + "/sa.key",
			"--service-cluster-ip-range=" + cfg.ServiceCIDR,
			// Above the ingress controller's host port, so that no NodePort
			// can take it over.
			"--service-node-port-range=" + strconv.Itoa(cfg.IngressPort+1) + "-32767",
			"--requestheader-client-ca-file=" + pki + "/front-proxy-ca.crt",
			"--requestheader-allowed-names=front-proxy-client",
			"--requestheader-username-headers=X-Remote-User",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--proxy-client-cert-file=" + pki + "/front-proxy-client.crt",
			"--proxy-client-key-file=" + pki + "/front-proxy-client.key",
			"--profiling=false",
		}},
		{name: "kube-controller-manager", bin: k8s("kube-controller-manager"), args: []string{
			"--kubeconfig=" + kc("controller-manager"),
			"--authentication-kubeconfig=" + kc("controller-manager"),
			"--authorization-kubeconfig=" + kc("controller-manager"),
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(cfg.ControllerManagerPort),
			"--leader-elect=false",
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + pki + "/sa.key",
			"--root-ca-file=" + pki + "/ca.crt",
			"--cluster-signing-cert-file=" + pki + "/ca.crt",
			"--cluster-signing-key-file=" + pki + "/ca.key",
			"--service-cluster-ip-range=" + cfg.ServiceCIDR,
			"--allocate-node-cidrs=true",
			"--cluster-cidr=" + cfg.ClusterCIDR,
			"--node-cidr-mask-size=24",
			"--profiling=false",
		}},
		{name: "kube-scheduler", bin: k8s("kube-scheduler"), args: []string{
			"--kubeconfig=" + kc("scheduler"),
			"--authentication-kubeconfig=" + kc("scheduler"),
			"--authorization-kubeconfig=" + kc("scheduler"),
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(cfg.SchedulerPort),
			"--leader-elect=false",
			"--profiling=false",
		}},
		{name: "kubelet", bin: k8s("kubelet"), args: []string{
			"--config=" + filepath.Join(cfg.ConfigDir(), "kubelet.yaml"),
			"--kubeconfig=" + kc("kubelet"),
			"--root-dir=" + filepath.Join(cfg.StateDir, "kubelet"),
			"--hostname-override=" + cfg.NodeName,
			"--node-ip=" + cfg.NodeIP,
			"--v=1",
		}},
		{name: "kube-proxy", bin: k8s("kube-proxy"), args: []string{
			"--config=" + filepath.Join(cfg.ConfigDir(), "kube-proxy.yaml"),
			// Each rule sync with its start and duration, so a refused
			// connect at the NodePort can be set against them.
			"--v=2",
		}},
	}
}

func (c *Cluster) pidFile(d daemon) proc.PIDFile {
	return proc.PIDFile{Path: filepath.Join(c.cfg.PIDDir(), d.name), Exe: filepath.Base(d.bin)}
}

// daemon returns the daemon called name.
func (c *Cluster) daemon(name string) (daemon, error) {
	for _, d := range c.daemons() {
		if d.name == name {
			return d, nil
		}
	}
	return daemon{}, fmt.Errorf("unknown daemon %q", name)
}

// daemonPIDFile returns the PID file of the daemon called name.
func (c *Cluster) daemonPIDFile(name string) (proc.PIDFile, error) {
	d, err := c.daemon(name)
	if err != nil {
		return proc.PIDFile{}, err
	}
	return c.pidFile(d), nil
}

// start launches d unless it already runs; it reports whether it started it.
func (c *Cluster) start(name string) (bool, error) {
	d, err := c.daemon(name)
	if err != nil {
		return false, err
	}
	pf := c.pidFile(d)
	if c.host.alive(pf) != 0 {
		return false, nil
	}
	pid, err := c.run.Daemon(command.Cmd{
		What: "start " + d.name, Name: d.bin, Args: d.args, Env: []string{hostPath},
	}, filepath.Join(c.cfg.LogDir(), d.name+".log"))
	if err != nil {
		return false, err
	}
	if err := pf.Write(pid); err != nil {
		return false, err
	}
	// Until exec has finished, /proc shows the harness's command line, and
	// a daemon that fails on its flags exits at once: wait for either.
	for i := 0; i < 40 && c.host.alive(pf) == 0; i++ {
		if !c.host.running(pid) {
			return false, fmt.Errorf("start %s: it exited at once; see %s", d.name, filepath.Join(c.cfg.LogDir(), d.name+".log"))
		}
		time.Sleep(25 * time.Millisecond)
	}
	return true, nil
}

// startAll starts the named daemons, printing which were (re)started.
func (c *Cluster) startAll(names ...string) error {
	for _, n := range names {
		started, err := c.start(n)
		if err != nil {
			return err
		}
		if started {
			c.out.Printf("started %s", n)
		} else {
			c.out.Printf("%s already running", n)
		}
	}
	return nil
}

// waitFor polls cond until it returns nil or timeout passes; the daemons
// named in watch are checked on the way, so a crash fails fast.
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, watch []string, cond func(context.Context) error) error {
	var pfs []proc.PIDFile
	for _, n := range watch {
		pf, err := c.daemonPIDFile(n)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		pfs = append(pfs, pf)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = cond(ctx); last == nil {
			return nil
		}
		for i, pf := range pfs {
			if c.host.alive(pf) == 0 {
				return fmt.Errorf("%s: %s exited; see %s", what, watch[i], filepath.Join(c.cfg.LogDir(), watch[i]+".log"))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready after %s: %v", what, timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
