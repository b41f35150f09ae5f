// Package vulndb turns the Go vulnerability database's OSV files, as the
// golang.org/x/vulndb module carries them (data/osv), into the database
// layout `govulncheck -db file://DIR` reads: index/db.json, index/modules.json
// and ID/<id>.json.
//
// The module's files carry zero "modified" and "published" dates (the real
// ones live in the repository's history), so every entry is given the time of
// the pinned version: govulncheck prints it as the database's date.
package vulndb

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Module is the module whose data/osv folder is the database.
const Module = "golang.org/x/vulndb"

// Entry is the part of an OSV entry the index needs; the files are copied
// whole, with only their dates filled in.
type Entry struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	// Fixed stays empty: govulncheck then reads every entry of an affected
	// module, which costs a file read and can never skip a vulnerable version.
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

// PseudoVersionTime returns the commit time a pseudo-version such as
// v0.0.0-20261105234957-e22db6528018 carries.
func PseudoVersionTime(version string) (time.Time, error) {
	parts := strings.Split(version, "-")
	if len(parts) < 3 {
		return time.Time{}, fmt.Errorf("%s is not a pseudo-version (vX.Y.Z-yyyymmddhhmmss-commit)", version)
	}
	stamp := parts[len(parts)-2]
	if i := strings.LastIndexByte(stamp, '.'); i >= 0 { // vX.Y.(Z+1)-0.yyyymmddhhmmss-commit
		stamp = stamp[i+1:]
	}
	t, err := time.Parse("20060102150405", stamp)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not a pseudo-version: %w", version, err)
	}
	return t.UTC(), nil
}

// Write reads every OSV file in osvDir and writes the database into out, each
// entry dated modified. It returns the entries, for a caller that builds a
// second database (Trivy's) from the same data.
func Write(osvDir, out string, modified time.Time) ([]Entry, error) {
	files, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list OSV files: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no OSV files in %s", osvDir)
	}
	for _, d := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return nil, fmt.Errorf("create the database: %w", err)
		}
	}
	modules := map[string]*moduleMeta{}
	var entries []Entry
	for _, f := range files {
		e, raw, err := readEntry(f, modified)
		if err != nil {
			return nil, err
		}
		if e.ID+".json" != filepath.Base(f) {
			return nil, fmt.Errorf("%s holds entry %q: the file must be named after its id", f, e.ID)
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), raw, 0o644); err != nil {
			return nil, fmt.Errorf("write entry %s: %w", e.ID, err)
		}
		for _, a := range e.Affected {
			m := modules[a.Package.Name]
			if m == nil {
				m = &moduleMeta{Path: a.Package.Name}
				modules[a.Package.Name] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: modified})
		}
		entries = append(entries, e)
	}
	index := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		index = append(index, m)
	}
	sort.Slice(index, func(i, j int) bool { return index[i].Path < index[j].Path })
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), index); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(out, "index", "db.json"), map[string]time.Time{"modified": modified}); err != nil {
		return nil, err
	}
	return entries, nil
}

// readEntry parses one OSV file and returns it re-encoded with its zero
// dates replaced; every other field is kept as it was.
func readEntry(path string, modified time.Time) (Entry, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Entry{}, nil, fmt.Errorf("read OSV entry: %w", err)
	}
	var e Entry
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, nil, fmt.Errorf("parse OSV entry %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &fields); err != nil {
		return Entry{}, nil, fmt.Errorf("parse OSV entry %s: %w", path, err)
	}
	date, _ := json.Marshal(modified)
	for _, k := range []string{"modified", "published"} {
		var t time.Time
		if json.Unmarshal(fields[k], &t) != nil || t.IsZero() {
			fields[k] = date
		}
	}
	raw, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return Entry{}, nil, fmt.Errorf("encode OSV entry %s: %w", e.ID, err)
	}
	return e, raw, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
