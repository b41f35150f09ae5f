// Command trivydb builds a Trivy vulnerability database (schema 2, the one
// Trivy reads from <cache-dir>/db) from the Go vulnerability database's OSV
// files alone, so `trivy image` and govulncheck scan against the same data.
//
// trivy-db's own Go source keeps only the standard library and golang.org/x
// modules, because its full build takes every other module from GitHub's
// advisory database, which no scan here can reach. This builder runs the same
// OSV reader under the same source name with every module kept.
//
// It is a module of its own: it must use the trivy-db version that the
// pinned Trivy requires (the scan checks that go.mod matches).
//
//	trivydb OSV_ROOT OUT_DIR DATE    reads OSV_ROOT/govulndb/data/osv/*.json
//
// DATE (RFC 3339) is the data's date, written as the database's UpdatedAt,
// so the same data always gives the same metadata.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/ecosystem"
	"github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy-db/pkg/vulndb"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/osv"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/vulnerability"
	"k8s.io/utils/clock"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: trivydb OSV_ROOT OUT_DIR DATE  (reads OSV_ROOT/govulndb/data/osv/*.json; DATE in RFC 3339)")
		os.Exit(2)
	}
	date, err := time.Parse(time.RFC3339, os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "trivydb: DATE:", err)
		os.Exit(2)
	}
	if err := build(os.Args[1], os.Args[2], date); err != nil {
		fmt.Fprintln(os.Stderr, "trivydb:", err)
		os.Exit(1)
	}
}

func build(root, out string, date time.Time) error {
	if err := db.Init(out); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	defer db.Close()
	// Only Trivy's --skip-db-update reads the database, and it never asks
	// whether an update is due: the interval is a formality.
	srcs := map[types.SourceID]vulnsrc.VulnSrc{vulnerability.GoVulnDB: goVulnDB{}}
	opts := []vulndb.Option{vulndb.WithVulnSrcs(srcs), vulndb.WithClock(fixedClock{t: date})}
	if err := vulndb.New(root, out, 365*24*time.Hour, opts...).Build([]string{string(vulnerability.GoVulnDB)}); err != nil {
		return fmt.Errorf("build the database: %w", err)
	}
	return nil
}

// fixedClock tells the builder the data's date instead of the time of the
// build.
type fixedClock struct {
	clock.RealClock
	t time.Time
}

func (c fixedClock) Now() time.Time { return c.t }

// goVulnDB is trivy-db's Go vulnerability source, every module kept.
type goVulnDB struct{}

func (goVulnDB) Name() types.SourceID { return vulnerability.GoVulnDB }

func (goVulnDB) Update(root string) error {
	sources := map[ecosystem.Type]types.DataSource{
		ecosystem.Go: {ID: vulnerability.GoVulnDB, Name: "The Go Vulnerability Database", URL: "https://pkg.go.dev/vuln/"},
	}
	return osv.New(filepath.Join("govulndb", "data", "osv"), vulnerability.GoVulnDB, sources, osv.WithTransformer(keepAll{})).Update(root)
}

type keepAll struct{}

// PostParseAffected keeps the platforms an entry names, as upstream does.
func (keepAll) PostParseAffected(a osv.Advisory, af osv.Affected) (osv.Advisory, error) {
	var oses, arches []string
	for _, imp := range af.EcosystemSpecific.Imports {
		oses = append(oses, imp.GOOS...)
		arches = append(arches, imp.GOARCH...)
	}
	slices.Sort(oses)
	slices.Sort(arches)
	a.OSes, a.Arches = slices.Compact(oses), slices.Compact(arches)
	return a, nil
}

// TransformAdvisories drops only the toolchain's entries (the go command is
// not in any binary) and adds the entry's page as a reference.
func (keepAll) TransformAdvisories(advs []osv.Advisory, e osv.Entry) ([]osv.Advisory, error) {
	var specific struct {
		URL string `json:"url"`
	}
	if len(e.DatabaseSpecific) > 0 {
		if err := json.Unmarshal(e.DatabaseSpecific, &specific); err != nil {
			return nil, fmt.Errorf("entry %s: database_specific: %w", e.ID, err)
		}
	}
	var kept []osv.Advisory
	for _, a := range advs {
		if a.PkgName == "toolchain" {
			continue
		}
		if specific.URL != "" {
			a.References = append(a.References, specific.URL)
		}
		kept = append(kept, a)
	}
	return kept, nil
}
