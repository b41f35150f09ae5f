package testcluster

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(templateFS, "templates/*.tmpl"))

// templateData is what the configuration templates may refer to.
type templateData struct {
	Config
	StateDir string
	PKI      string
	Socket   string
	// HelperImage is the storage provisioner's helper pod image, named
	// after the Debian package apt offers (known only once Up has asked).
	HelperImage string
}

func (c Config) templateData() templateData {
	return templateData{Config: c, StateDir: c.StateDir, PKI: c.PKIDir(), Socket: c.ContainerdSocket()}
}

// render executes one template.
func (c Config) render(name string) ([]byte, error) {
	return c.renderData(name, c.templateData())
}

func (c Config) renderData(name string, d templateData) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, d); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// writeConfigs renders the daemons' configuration files into the state dir.
func (c Config) writeConfigs() error {
	files := map[string]string{
		"containerd.toml.tmpl": filepath.Join(c.ConfigDir(), "containerd.toml"),
		"cni.conflist.tmpl":    filepath.Join(c.StateDir, "cni", "net.d", "10-"+c.CNINetwork+".conflist"),
		"kubelet.yaml.tmpl":    filepath.Join(c.ConfigDir(), "kubelet.yaml"),
		"kube-proxy.yaml.tmpl": filepath.Join(c.ConfigDir(), "kube-proxy.yaml"),
	}
	for tmpl, path := range files {
		b, err := c.render(tmpl)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("create config dir: %w", err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return c.writeRegistryHosts()
}

// writeRegistryHosts tells containerd that c.Registry speaks plain HTTP, as
// kind's local registry does; other registries keep containerd's defaults.
func (c Config) writeRegistryHosts() error {
	dir := filepath.Join(c.StateDir, "containerd", "certs.d", c.Registry)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create containerd's registry config dir: %w", err)
	}
	hosts := fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", c.Registry)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		return fmt.Errorf("write containerd's hosts.toml for %s: %w", c.Registry, err)
	}
	return nil
}
