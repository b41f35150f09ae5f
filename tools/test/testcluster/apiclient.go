package testcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// apiClient talks to the API server as the admin, for the harness's own
// readiness checks (kubectl would cost a process per poll).
type apiClient struct {
	base string
	http *http.Client
}

func (c *Cluster) apiClient() (*apiClient, error) {
	pki := c.cfg.PKIDir()
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key"))
	if err != nil {
		return nil, fmt.Errorf("load admin certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}}
	return &apiClient{base: c.cfg.APIServerURL(), http: &http.Client{Transport: tr, Timeout: 5 * time.Second}}, nil
}

func (a *apiClient) close() { a.http.CloseIdleConnections() }

// get decodes the JSON at path into out.
func (a *apiClient) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, body)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

func (a *apiClient) readyz(ctx context.Context) error { return a.get(ctx, "/readyz", nil) }

// nodeReady returns nil when the node reports condition Ready=True in a
// status posted at or after since: after a crash the stored status still says
// Ready although no kubelet runs.
func (a *apiClient) nodeReady(ctx context.Context, name string, since time.Time) error {
	var node struct {
		Status struct {
			Conditions []struct {
				Type, Status, Reason, Message string
				LastHeartbeatTime             time.Time
			}
		}
	}
	if err := a.get(ctx, "/api/v1/nodes/"+name, &node); err != nil {
		return err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type != "Ready" {
			continue
		}
		if cond.Status != "True" {
			return fmt.Errorf("node %s not Ready: %s %s", name, cond.Reason, cond.Message)
		}
		// Heartbeats have whole-second precision.
		if cond.LastHeartbeatTime.Before(since.Truncate(time.Second)) {
			return fmt.Errorf("node %s: Ready status is from %s, before the kubelet started", name, cond.LastHeartbeatTime.Format(time.RFC3339))
		}
		return nil
	}
	return fmt.Errorf("node %s has no Ready condition yet", name)
}

// deploymentAvailable returns nil when the deployment's current generation
// has all its replicas updated and available.
func (a *apiClient) deploymentAvailable(ctx context.Context, ns, name string) error {
	var d struct {
		Metadata struct{ Generation int64 }
		Spec     struct{ Replicas int32 }
		Status   struct {
			ObservedGeneration int64
			UpdatedReplicas    int32
			AvailableReplicas  int32
		}
	}
	if err := a.get(ctx, "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, &d); err != nil {
		return err
	}
	if d.Status.ObservedGeneration < d.Metadata.Generation || d.Status.UpdatedReplicas < d.Spec.Replicas || d.Status.AvailableReplicas < d.Spec.Replicas {
		return fmt.Errorf("deployment %s/%s: %d of %d replicas available", ns, name, d.Status.AvailableReplicas, d.Spec.Replicas)
	}
	return nil
}

// defaultServiceAccount returns nil once the controller manager has created
// the default service account (pods cannot be created before that).
func (a *apiClient) defaultServiceAccount(ctx context.Context) error {
	return a.get(ctx, "/api/v1/namespaces/default/serviceaccounts/default", nil)
}

// httpOK returns nil when url answers 200 (with Host header host, if set).
func httpOK(ctx context.Context, client *http.Client, url, host string) error {
	status, _, err := httpGet(ctx, client, url, host)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, status)
	}
	return nil
}

func httpGet(ctx context.Context, client *http.Client, url, host string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body), nil
}

// readiness tells whether each part of the cluster serves. liveReadiness
// asks the daemons; unit tests script the answers.
type readiness interface {
	etcd(ctx context.Context) error
	containerd(ctx context.Context) error
	apiServer(ctx context.Context) error
	// node is nil when the node is Ready in a status posted since then.
	node(ctx context.Context, since time.Time) error
	kubeProxy(ctx context.Context) error
	defaultServiceAccount(ctx context.Context) error
	// deployment is nil when the Deployment ns/name has all its replicas
	// available: the ingress controller, CoreDNS, the storage provisioner.
	deployment(ctx context.Context, ns, name string) error
	ingressServing(ctx context.Context) error
	close()
}

// liveReadiness probes the daemons over HTTP and the containerd socket.
type liveReadiness struct {
	cluster *Cluster
	client  *apiClient // made on first use: the certificates exist only once Up made them
}

func (r *liveReadiness) api() (*apiClient, error) {
	if r.client == nil {
		a, err := r.cluster.apiClient()
		if err != nil {
			return nil, err
		}
		r.client = a
	}
	return r.client, nil
}

// close forgets the client: the next check reads the credentials again,
// since a cluster brought down and up again has a new CA.
func (r *liveReadiness) close() {
	if r.client != nil {
		r.client.close()
		r.client = nil
	}
}

func (r *liveReadiness) etcd(ctx context.Context) error {
	return httpOK(ctx, http.DefaultClient, "http://127.0.0.1:"+strconv.Itoa(r.cluster.cfg.EtcdClientPort)+"/health", "")
}

func (r *liveReadiness) containerd(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", r.cluster.cfg.ContainerdSocket())
	if err != nil {
		return err
	}
	return conn.Close()
}

func (r *liveReadiness) apiServer(ctx context.Context) error {
	a, err := r.api()
	if err != nil {
		return err
	}
	return a.readyz(ctx)
}

func (r *liveReadiness) node(ctx context.Context, since time.Time) error {
	a, err := r.api()
	if err != nil {
		return err
	}
	return a.nodeReady(ctx, r.cluster.cfg.NodeName, since)
}

func (r *liveReadiness) kubeProxy(ctx context.Context) error {
	return httpOK(ctx, http.DefaultClient, "http://127.0.0.1:"+strconv.Itoa(r.cluster.cfg.KubeProxyHealthzPort)+"/healthz", "")
}

func (r *liveReadiness) defaultServiceAccount(ctx context.Context) error {
	a, err := r.api()
	if err != nil {
		return err
	}
	return a.defaultServiceAccount(ctx)
}

func (r *liveReadiness) deployment(ctx context.Context, ns, name string) error {
	a, err := r.api()
	if err != nil {
		return err
	}
	return a.deploymentAvailable(ctx, ns, name)
}

// ingressServing returns nil when Traefik answers on the ingress address: an
// unknown host gets its 404.
func (r *liveReadiness) ingressServing(ctx context.Context) error {
	status, _, err := httpGet(ctx, http.DefaultClient, "http://"+r.cluster.cfg.IngressAddr()+"/", "testcluster-probe.invalid")
	if err != nil {
		return err
	}
	if status != http.StatusNotFound {
		return fmt.Errorf("ingress answered %d to an unknown host, want 404", status)
	}
	return nil
}
