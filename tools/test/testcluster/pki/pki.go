// Package pki creates the certificate authority, the component certificates
// and the kubeconfig files of the test cluster with crypto/x509.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Params are the names and addresses the certificates must carry.
type Params struct {
	NodeName     string
	NodeIP       string
	APIServiceIP string // the kubernetes Service's ClusterIP
	APIServerURL string
	ClusterName  string
}

// Client certificates with a kubeconfig each: file name, common name, organisation.
var clients = []struct{ name, cn, org string }{
	{"admin", "testcluster-admin", "system:masters"},
	{"controller-manager", "system:kube-controller-manager", ""},
	{"scheduler", "system:kube-scheduler", ""},
	{"kubelet", "system:node:%s", "system:nodes"},
	{"kube-proxy", "system:kube-proxy", ""},
}

// Ensure writes every file into dir unless ca.crt already exists there: the
// certificates stay stable across restarts of the same cluster.
func Ensure(dir string, p Params) error {
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pki dir: %w", err)
	}
	ca, caKey, err := newCA("testcluster-ca")
	if err != nil {
		return err
	}
	if err := writePair(dir, "ca", ca, caKey); err != nil {
		return err
	}
	apiIPs := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(p.NodeIP), net.ParseIP(p.APIServiceIP)}
	apiNames := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if err := issue(dir, "apiserver", ca, caKey, "kube-apiserver", "", apiNames, apiIPs); err != nil {
		return err
	}
	if err := issue(dir, "apiserver-kubelet-client", ca, caKey, "kube-apiserver-kubelet-client", "system:masters", nil, nil); err != nil {
		return err
	}
	kubeletIPs := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(p.NodeIP)}
	if err := issue(dir, "kubelet-serving", ca, caKey, p.NodeName, "", []string{p.NodeName, "localhost"}, kubeletIPs); err != nil {
		return err
	}
	for _, c := range clients {
		cn := c.cn
		if c.name == "kubelet" {
			cn = fmt.Sprintf(c.cn, p.NodeName)
		}
		if err := issue(dir, c.name, ca, caKey, cn, c.org, nil, nil); err != nil {
			return err
		}
		if err := writeKubeconfig(dir, c.name, p); err != nil {
			return err
		}
	}
	// The aggregation layer's own CA and client: without them every
	// component logs errors about a missing request-header CA bundle.
	fpCA, fpKey, err := newCA("testcluster-front-proxy-ca")
	if err != nil {
		return err
	}
	if err := writePair(dir, "front-proxy-ca", fpCA, fpKey); err != nil {
		return err
	}
	if err := issue(dir, "front-proxy-client", fpCA, fpKey, "front-proxy-client", "", nil, nil); err != nil {
		return err
	}
	// Service account tokens are signed with their own key.
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	if err := writeKey(filepath.Join(dir, "sa.key"), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return fmt.Errorf("encode service account public key: %w", err)
	}
	return writePEM(filepath.Join(dir, "sa.pub"), "PUBLIC KEY", pub, 0o644)
}

func newCA(cn string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA: %w", err)
	}
	return cert, key, nil
}

// issue signs a certificate for name; with DNS names or IPs it is a serving
// certificate (also usable as a client), otherwise a client certificate.
func issue(dir, name string, ca *x509.Certificate, caKey crypto.Signer, cn, org string, dns []string, ips []net.IP) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate %s key: %w", name, err)
	}
	subj := pkix.Name{CommonName: cn}
	if org != "" {
		subj.Organization = []string{org}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      subj,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	if len(dns) > 0 || len(ips) > 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("sign %s certificate: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse %s certificate: %w", name, err)
	}
	return writePair(dir, name, cert, key)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		// crypto/rand does not fail on Linux; a fixed serial still works.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func writePair(dir, name string, cert *x509.Certificate, key crypto.Signer) error {
	if err := writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", cert.Raw, 0o644); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, name+".key"), key)
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", path, err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeKubeconfig embeds the certificates, so the file works when copied.
func writeKubeconfig(dir, name string, p Params) error {
	read := func(f string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", fmt.Errorf("kubeconfig %s: %w", name, err)
		}
		return base64.StdEncoding.EncodeToString(b), nil
	}
	ca, err1 := read("ca.crt")
	crt, err2 := read(name + ".crt")
	key, err3 := read(name + ".key")
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[4]s
  user:
    client-certificate-data: %[5]s
    client-key-data: %[6]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[4]s
current-context: %[1]s
`, p.ClusterName, p.APIServerURL, ca, name, crt, key)
	if err := os.WriteFile(filepath.Join(dir, name+".kubeconfig"), []byte(kc), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", name, err)
	}
	return nil
}
