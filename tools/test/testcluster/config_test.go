package testcluster

import (
	"net"
	"strings"
	"testing"
)

func TestConfigDefaultsDoNotCollide(t *testing.T) {
	c := ConfigFromEnv(func(string) string { return "" })
	nets := map[string]string{
		"cluster": c.ClusterCIDR, "service": c.ServiceCIDR, "node": c.NodeIP + "/32",
		// Ranges other tools on a developer machine use.
		"docker": "172.17.0.0/16", "minikube": "192.168.49.0/24", "kind pods": "10.244.0.0/16", "kind services": "10.96.0.0/12",
	}
	parsed := map[string]*net.IPNet{}
	for name, cidr := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		parsed[name] = n
	}
	for a, na := range parsed {
		for b, nb := range parsed {
			if a < b && (na.Contains(nb.IP) || nb.Contains(na.IP)) {
				t.Errorf("%s %s overlaps %s %s", a, na, b, nb)
			}
		}
	}
	_, pods, _ := net.ParseCIDR(c.ClusterCIDR)
	_, sub, _ := net.ParseCIDR(c.PodSubnet)
	if !pods.Contains(sub.IP) {
		t.Errorf("pod subnet %s outside cluster CIDR %s", c.PodSubnet, c.ClusterCIDR)
	}
	_, svc, _ := net.ParseCIDR(c.ServiceCIDR)
	for _, ip := range []string{c.APIServiceIP, c.DNSServiceIP} {
		if !svc.Contains(net.ParseIP(ip)) {
			t.Errorf("service IP %s outside %s", ip, c.ServiceCIDR)
		}
	}
	ports := map[int]string{}
	for name, p := range map[string]int{
		"apiserver": c.APIServerPort, "etcd": c.EtcdClientPort, "etcd peer": c.EtcdPeerPort,
		"kubelet": c.KubeletPort, "kubelet healthz": c.KubeletHealthzPort, "controller-manager": c.ControllerManagerPort,
		"scheduler": c.SchedulerPort, "kube-proxy metrics": c.KubeProxyMetricsPort, "kube-proxy healthz": c.KubeProxyHealthzPort,
		"ingress": c.IngressPort, "ingress health": c.IngressHealthPort,
	} {
		if other, dup := ports[p]; dup {
			t.Errorf("port %d used by %s and %s", p, name, other)
		}
		ports[p] = name
		switch p {
		case 6443, 2379, 2380, 10248, 10249, 10250, 10256, 10257, 10259:
			t.Errorf("%s uses Kubernetes' default port %d", name, p)
		}
	}
	if len(c.NodeBridge) > 15 || len(c.CNIBridge) > 15 {
		t.Error("interface names longer than the kernel's 15 characters")
	}
}

func TestConfigFromEnvOverridesDirs(t *testing.T) {
	env := map[string]string{EnvStateDir: "/tmp/s", EnvCacheDir: "/tmp/c"}
	c := ConfigFromEnv(func(k string) string { return env[k] })
	if c.KubeconfigPath() != "/tmp/s/kubeconfig" || c.KubernetesCacheDir() != "/tmp/c/kubernetes-v1.34.4" {
		t.Fatalf("overrides not applied: %s %s", c.KubeconfigPath(), c.KubernetesCacheDir())
	}
}

// The kubelet's pods, CoreDNS's Service and the provisioner agree on the
// names and addresses the manifests and suites rely on.
func TestAddonManifests(t *testing.T) {
	c := ConfigFromEnv(func(string) string { return "" })
	kubelet, err := c.render("kubelet.yaml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	dns, err := c.render("coredns.yaml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	d := c.templateData()
	d.HelperImage = BusyboxImage("1:1.35.0-4+deb12u1+b1")
	storage, err := c.renderData("storage.yaml.tmpl", d)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ doc, text string }{
		{string(kubelet), "clusterDNS: [10.215.0.10]"},
		{string(kubelet), "clusterDomain: cluster.local"},
		{string(dns), "clusterIP: 10.215.0.10"},
		{string(dns), "name: kube-dns"},
		{string(dns), "image: testcluster.local/coredns:v1.15.0"},
		{string(dns), "kubernetes cluster.local in-addr.arpa"},
		{string(storage), "name: standard"},
		{string(storage), `storageclass.kubernetes.io/is-default-class: "true"`},
		{string(storage), "volumeBindingMode: WaitForFirstConsumer"},
		{string(storage), "image: testcluster.local/busybox-static:1.35.0-4_deb12u1_b1"},
		{string(storage), `"paths": ["/var/lib/scalable-app/testcluster/local-path"]`},
	} {
		if !strings.Contains(want.doc, want.text) {
			t.Errorf("no %q in:\n%s", want.text, want.doc)
		}
	}
}
