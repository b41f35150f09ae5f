package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// The production binary links only the service's own packages, the standard
// library and the modules the service's go.mod names for it: never the
// tools (hot reloader, test cluster, benchmarks), which live in tools/.
func TestBinaryLinksOnlyTheServiceAndItsFewModules(t *testing.T) {
	allowedModules := map[string]bool{
		"github.com/prometheus/client_golang": true,
		"github.com/prometheus/client_model":  true,
		"github.com/prometheus/common":        true,
		"github.com/prometheus/procfs":        true,
		"github.com/beorn7/perks":             true,
		"github.com/cespare/xxhash/v2":        true,
		"github.com/munnerz/goautoneg":        true,
		"golang.org/x/sys":                    true,
		"google.golang.org/protobuf":          true,
		// PostgreSQL: the pgx driver and pool, and what they use (.pgpass
		// and pg_service.conf readers, puddle's pool, SASLprep's Unicode
		// tables, a semaphore).
		"github.com/jackc/pgx/v5":        true,
		"github.com/jackc/pgpassfile":    true,
		"github.com/jackc/pgservicefile": true,
		"github.com/jackc/puddle/v2":     true,
		"golang.org/x/text":              true,
		"golang.org/x/sync":              true,
		// The schema migrations: goose and its helpers (environment
		// interpolation of SQL files, retries of its lock, error lists).
		"github.com/pressly/goose/v3":     true,
		"github.com/mfridman/interpolate": true,
		"github.com/sethvargo/go-retry":   true,
		"go.uber.org/multierr":            true,
	}
	out, err := exec.Command("go", "list", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var own int
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) != 2 {
			continue
		}
		pkg, module := fields[0], fields[1]
		switch {
		case module == "scalable-app":
			own++
			if pkg != "scalable-app/cmd/scalable-app" && !strings.HasPrefix(pkg, "scalable-app/internal/") {
				t.Errorf("the service imports %s, which is not one of its packages", pkg)
			}
		case !allowedModules[module]:
			t.Errorf("the service imports %s from module %s, which is not one the service may use", pkg, module)
		}
	}
	if own < 3 {
		t.Fatalf("go list found %d of the service's own packages; the check is not looking at the binary:\n%s", own, out)
	}
}
