package devloop

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"scalable-app/tools/internal/repo"
)

// TestManifestMatchesTheSeed checks k8s/dev/deployment-dev.yaml against
// the seed's section 7 and the names this package relies on.
func TestManifestMatchesTheSeed(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "k8s", "dev", "deployment-dev.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Comments are documentation, not settings.
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			lines = append(lines, strings.TrimRight(line, " "))
		}
	}
	doc := strings.Join(lines, "\n")
	for _, want := range []string{
		"kind: Deployment",
		"  name: " + Deployment,
		"  namespace: " + Namespace,
		"  replicas: 1",
		"          image: scalable-app:dev",
		"          imagePullPolicy: IfNotPresent",
		`          command: ["hotreload"]`,
		"              containerPort: 5000",
		"              mountPath: /app",
		"            path: " + MountPath,
		"            type: Directory",
		"        runAsNonRoot: true",
		"        runAsUser: " + strconv.Itoa(PodUID),
		"        runAsGroup: " + strconv.Itoa(PodGID),
		"            readOnlyRootFilesystem: true",
		"            allowPrivilegeEscalation: false",
		"          readinessProbe:",
		"          livenessProbe:",
		"          resources:",
	} {
		if !strings.Contains(doc, want+"\n") {
			t.Errorf("deployment-dev.yaml lacks the line %q", want)
		}
	}
	// The only label anywhere is app: scalable-app-dev, so that no Service
	// of the test environment selects the dev pod.
	blocks := labelBlocks(lines)
	if len(blocks) != 3 {
		t.Fatalf("want 3 label blocks (Deployment, selector, pod template), got %d: %q", len(blocks), blocks)
	}
	for _, got := range blocks {
		if got != "app: "+Deployment {
			t.Errorf("labels are %q, want only app: %s", got, Deployment)
		}
	}
	if !strings.Contains(doc, "--addr=:"+"5000") {
		t.Error("the reloader does not listen on the container port 5000")
	}
}

func TestImageListed(t *testing.T) {
	names := `["docker.io/library/scalable-app:dev","docker.io/library/scalable-app@sha256:abc"]
["registry.k8s.io/pause:3.10"]
`
	for image, want := range map[string]bool{
		"scalable-app:dev":    true,
		"scalable-app:latest": false,
		"pause:3.10":          true,
		"app:dev":             false,
	} {
		if got := imageListed(names, image); got != want {
			t.Errorf("imageListed(%q) = %v, want %v", image, got, want)
		}
	}
}

// labelBlocks returns the entries under each labels: or matchLabels: key.
func labelBlocks(lines []string) []string {
	var blocks []string
	for i, line := range lines {
		key := strings.TrimSpace(line)
		if key != "labels:" && key != "matchLabels:" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		var entries []string
		for _, next := range lines[i+1:] {
			if len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			entries = append(entries, strings.TrimSpace(next))
		}
		blocks = append(blocks, strings.Join(entries, "; "))
	}
	return blocks
}
