package testcluster

import (
	"path/filepath"
	"strconv"
	"strings"
)

// Config is the one place that names every address, port, interface, path and
// version of the test cluster. The defaults avoid what is usually taken on a
// developer machine: Docker's 172.17.0.0/16, minikube's 192.168.49.0/24,
// kind's 10.244.0.0/16 and 10.96.0.0/12, and the well-known Kubernetes ports
// (6443, 2379-2380, 10248-10259). The README table mirrors this file.
type Config struct {
	StateDir string // runtime state, certificates, logs; removed by Down
	CacheDir string // built binaries and image archives, kept across runs

	KubernetesVersion string
	TraefikVersion    string
	CoreDNSVersion    string
	LocalPathVersion  string // Rancher's local-path-provisioner
	PauseVersion      string // bump when the pause source changes

	NodeName   string
	NodeBridge string // port-less bridge that holds NodeIP (needs no dummy kernel module)
	NodeIP     string
	CNIBridge  string // bridge the pods' veths attach to
	CNINetwork string // CNI network name; also prefixes its cache files

	ClusterCIDR   string // all pod addresses
	PodSubnet     string // this node's share of ClusterCIDR
	ServiceCIDR   string
	APIServiceIP  string // first address of ServiceCIDR: the kubernetes Service
	DNSServiceIP  string // the kube-dns Service (CoreDNS), the pods' nameserver
	ClusterDomain string
	StorageClass  string // the default StorageClass, named as kind's and minikube's

	APIServerPort         int
	EtcdClientPort        int
	EtcdPeerPort          int
	KubeletPort           int
	KubeletHealthzPort    int
	ControllerManagerPort int
	SchedulerPort         int
	KubeProxyMetricsPort  int
	KubeProxyHealthzPort  int
	IngressPort           int // Traefik's web entry point, a port of the host (hostNetwork) on 127.0.0.1 and NodeIP, below the NodePort range
	IngressHealthPort     int // Traefik's /ping, on NodeIP (ingress-nginx's health port)

	// Registry is a plain-HTTP registry on this machine that containerd
	// pulls from (kind's local-registry convention; the pipeline's).
	Registry string

	CgroupRoot string // kubelet's cgroup root, a child of every cgroup v1 hierarchy

	// Host directories the CRI plugin and kubelet write to outside the
	// state dir; Down removes the cluster's entries from them.
	NetnsDir        string // pinned pod network namespaces
	CNIResultsDir   string // CNI result cache
	ShimSocketDir   string // containerd shim sockets
	ContainerLogDir string // kubelet's symlinks to pod logs
}

// Environment variables that move the state and cache directories.
const (
	EnvStateDir = "TESTCLUSTER_STATE_DIR"
	EnvCacheDir = "TESTCLUSTER_CACHE_DIR"
)

// DefaultStateDir and DefaultCacheDir live outside any checkout, so a fresh
// clone at any path finds the cache of an earlier run.
const (
	DefaultStateDir = "/var/lib/scalable-app/testcluster"
	DefaultCacheDir = "/var/cache/scalable-app/testcluster"
)

// ConfigFromEnv returns the defaults with the directory overrides applied.
func ConfigFromEnv(getenv func(string) string) Config {
	c := Config{
		StateDir: DefaultStateDir,
		CacheDir: DefaultCacheDir,

		KubernetesVersion: "v1.34.4",
		TraefikVersion:    "v3.6.12",
		CoreDNSVersion:    "v1.15.0",
		LocalPathVersion:  "v0.0.30",
		PauseVersion:      "1",

		NodeName:   "testcluster-node",
		NodeBridge: "sapp-node0",
		NodeIP:     "10.213.0.1",
		CNIBridge:  "sapp-cni0",
		CNINetwork: "scalable-testcluster",

		ClusterCIDR:   "10.214.0.0/16",
		PodSubnet:     "10.214.0.0/24",
		ServiceCIDR:   "10.215.0.0/16",
		APIServiceIP:  "10.215.0.1",
		DNSServiceIP:  "10.215.0.10",
		ClusterDomain: "cluster.local",
		StorageClass:  "standard",

		APIServerPort:         16443,
		EtcdClientPort:        12379,
		EtcdPeerPort:          12380,
		KubeletPort:           11250,
		KubeletHealthzPort:    11248,
		ControllerManagerPort: 11257,
		SchedulerPort:         11259,
		KubeProxyMetricsPort:  11249,
		KubeProxyHealthzPort:  11256,
		IngressPort:           30080,
		IngressHealthPort:     10254,

		Registry: "localhost:5001",

		CgroupRoot: "scalable-testcluster",

		NetnsDir:        "/var/run/netns",
		CNIResultsDir:   "/var/lib/cni/results",
		ShimSocketDir:   "/run/containerd/s",
		ContainerLogDir: "/var/log/containers",
	}
	if v := getenv(EnvStateDir); v != "" {
		c.StateDir = v
	}
	if v := getenv(EnvCacheDir); v != "" {
		c.CacheDir = v
	}
	return c
}

// Paths derived from StateDir and CacheDir.

func (c Config) KubeconfigPath() string { return filepath.Join(c.StateDir, "kubeconfig") }
func (c Config) BinDir() string         { return filepath.Join(c.StateDir, "bin") }
func (c Config) KubectlPath() string    { return filepath.Join(c.BinDir(), "kubectl") }
func (c Config) PKIDir() string         { return filepath.Join(c.StateDir, "pki") }
func (c Config) LogDir() string         { return filepath.Join(c.StateDir, "logs") }
func (c Config) PIDDir() string         { return filepath.Join(c.StateDir, "pids") }
func (c Config) ConfigDir() string      { return filepath.Join(c.StateDir, "config") }
func (c Config) ContainerdDir() string  { return filepath.Join(c.StateDir, "containerd") }
func (c Config) ContainerdSocket() string {
	return filepath.Join(c.ContainerdDir(), "containerd.sock")
}
func (c Config) KubernetesCacheDir() string {
	return filepath.Join(c.CacheDir, "kubernetes-"+c.KubernetesVersion)
}
func (c Config) TraefikCacheDir() string {
	return filepath.Join(c.CacheDir, "traefik-"+c.TraefikVersion)
}
func (c Config) CoreDNSCacheDir() string {
	return filepath.Join(c.CacheDir, "coredns-"+c.CoreDNSVersion)
}
func (c Config) LocalPathCacheDir() string {
	return filepath.Join(c.CacheDir, "local-path-provisioner-"+c.LocalPathVersion)
}

// BusyboxCacheDir is keyed by the Debian package version apt offers.
func (c Config) BusyboxCacheDir(debVersion string) string {
	return filepath.Join(c.CacheDir, "busybox-"+imageTag(debVersion))
}

// LocalPathDir holds the PersistentVolumes' data; Down removes it with the
// rest of the state.
func (c Config) LocalPathDir() string { return filepath.Join(c.StateDir, "local-path") }
func (c Config) PauseCacheDir() string {
	return filepath.Join(c.CacheDir, "pause-"+c.PauseVersion)
}

// Image references of the images the harness builds itself.
func (c Config) PauseImage() string { return "testcluster.local/pause:" + c.PauseVersion }
func (c Config) TraefikImage() string {
	return "testcluster.local/traefik:" + c.TraefikVersion
}
func (c Config) CoreDNSImage() string {
	return "testcluster.local/coredns:" + c.CoreDNSVersion
}
func (c Config) LocalPathImage() string {
	return "testcluster.local/local-path-provisioner:" + c.LocalPathVersion
}

// BusyboxImage names the helper image after the Debian package it holds.
func BusyboxImage(debVersion string) string {
	return "testcluster.local/busybox-static:" + imageTag(debVersion)
}

// imageTag turns a Debian version into a valid image tag: the epoch goes
// (1:1.35.0-4+b1 -> 1.35.0-4_b1); the image's labels keep the full version.
func imageTag(debVersion string) string {
	if _, v, ok := strings.Cut(debVersion, ":"); ok {
		debVersion = v
	}
	return strings.NewReplacer("+", "_", "~", "_").Replace(debVersion)
}

// APIServerURL is where every client, in or out of the cluster, reaches the API.
func (c Config) APIServerURL() string {
	return "https://" + c.NodeIP + ":" + strconv.Itoa(c.APIServerPort)
}

// IngressAddr is host:port of the ingress controller as seen from this machine.
func (c Config) IngressAddr() string {
	return "127.0.0.1:" + strconv.Itoa(c.IngressPort)
}
