package scan

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// ConfigPath is the pins file, from the repository root.
const ConfigPath = "security/scan.conf"

// IgnorePath is Trivy's ignore file, from the repository root: each accepted
// finding with its reason.
const IgnorePath = "security/trivyignore.yaml"

// Config holds the pinned versions of the scanners and their data.
type Config struct {
	Govulncheck string // golang.org/x/vuln
	Trivy       string // github.com/aquasecurity/trivy
	VulnDB      string // golang.org/x/vulndb, a pseudo-version
}

var settingLine = regexp.MustCompile(`^(govulncheck|trivy|vulndb)\s+(v\S+)$`)

// ReadConfig parses the pins file; every setting must be there once.
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read the scan settings: %w", err)
	}
	var c Config
	fields := map[string]*string{"govulncheck": &c.Govulncheck, "trivy": &c.Trivy, "vulndb": &c.VulnDB}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		m := settingLine.FindStringSubmatch(line)
		if m == nil {
			return Config{}, fmt.Errorf("%s:%d: want `govulncheck|trivy|vulndb vVERSION`, got %q", path, n, line)
		}
		if *fields[m[1]] != "" {
			return Config{}, fmt.Errorf("%s:%d: %s is set twice", path, n, m[1])
		}
		*fields[m[1]] = m[2]
	}
	for name, v := range fields {
		if *v == "" {
			return Config{}, fmt.Errorf("%s: no %s line", path, name)
		}
	}
	return c, nil
}

// SetVulnDB rewrites the vulndb line of the pins file, keeping the rest.
func SetVulnDB(path, version string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the scan settings: %w", err)
	}
	re := regexp.MustCompile(`(?m)^vulndb\s+v\S+`)
	if !re.Match(b) {
		return fmt.Errorf("%s has no vulndb line", path)
	}
	b = re.ReplaceAll(b, []byte("vulndb "+version))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write the scan settings: %w", err)
	}
	return nil
}
