package pki

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureIssuesVerifiableCertificates(t *testing.T) {
	dir := t.TempDir()
	p := Params{NodeName: "node-a", NodeIP: "10.213.0.1", APIServiceIP: "10.215.0.1", APIServerURL: "https://10.213.0.1:16443", ClusterName: "tc"}
	if err := Ensure(dir, p); err != nil {
		t.Fatal(err)
	}
	ca := load(t, filepath.Join(dir, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	api := load(t, filepath.Join(dir, "apiserver.crt"))
	for _, host := range []string{"10.213.0.1", "10.215.0.1", "kubernetes.default.svc", "localhost"} {
		if _, err := api.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("apiserver certificate for %s: %v", host, err)
		}
	}
	kubelet := load(t, filepath.Join(dir, "kubelet.crt"))
	if kubelet.Subject.CommonName != "system:node:node-a" || kubelet.Subject.Organization[0] != "system:nodes" {
		t.Errorf("kubelet client subject %v, want system:node:node-a in system:nodes", kubelet.Subject)
	}
	if _, err := kubelet.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("kubelet client certificate: %v", err)
	}
	kc, err := os.ReadFile(filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kc), "server: https://10.213.0.1:16443") || !strings.Contains(string(kc), "client-key-data:") {
		t.Errorf("admin kubeconfig lacks server or inline key:\n%s", kc)
	}

	// A second call keeps the existing certificates.
	if err := Ensure(dir, p); err != nil {
		t.Fatal(err)
	}
	if again := load(t, filepath.Join(dir, "ca.crt")); !again.Equal(ca) {
		t.Error("Ensure replaced an existing CA")
	}
}

func load(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
