package vulndb

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPseudoVersionTime(t *testing.T) {
	for v, want := range map[string]string{
		"v0.0.0-20261105234957-e22db6528018":   "2026-11-05T23:49:57Z",
		"v1.2.4-0.20240102030405-abcdefabcdef": "2024-01-02T03:04:05Z",
	} {
		got, err := PseudoVersionTime(v)
		if err != nil || got.Format(time.RFC3339) != want {
			t.Errorf("PseudoVersionTime(%s) = %v, %v; want %s", v, got, err, want)
		}
	}
	for _, v := range []string{"v1.9.0", "v0.0.0-2026110523-e22db6528018"} {
		if _, err := PseudoVersionTime(v); err == nil {
			t.Errorf("PseudoVersionTime(%s): no error", v)
		}
	}
}

// The written database has govulncheck's v1 layout, every module of every
// entry indexed, and the pinned date where the source had none.
func TestWrite(t *testing.T) {
	out := t.TempDir()
	date := time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)
	entries, err := Write("testdata/osv", out, date)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2", len(entries))
	}
	var db struct{ Modified time.Time }
	readJSON(t, filepath.Join(out, "index", "db.json"), &db)
	if !db.Modified.Equal(date) {
		t.Errorf("index/db.json modified = %v, want %v", db.Modified, date)
	}
	var modules []struct {
		Path  string
		Vulns []struct{ ID string }
	}
	readJSON(t, filepath.Join(out, "index", "modules.json"), &modules)
	got := map[string]string{}
	for _, m := range modules {
		for _, v := range m.Vulns {
			got[m.Path] += v.ID
		}
	}
	want := map[string]string{"golang.org/x/net": "GO-2023-1571", "golang.org/x/text": "GO-2022-1059", "stdlib": "GO-2023-1571"}
	if len(got) != len(want) {
		t.Errorf("modules index = %v, want %v", got, want)
	}
	for m, id := range want {
		if got[m] != id {
			t.Errorf("modules index for %s = %q, want %q", m, got[m], id)
		}
	}
	var entry struct {
		Modified, Published time.Time
		Summary             string
	}
	readJSON(t, filepath.Join(out, "ID", "GO-2023-1571.json"), &entry)
	if !entry.Modified.Equal(date) || entry.Published.Format(time.RFC3339) != "2023-02-16T22:29:08Z" {
		t.Errorf("entry dates = %v, %v: want the zero one filled and the real one kept", entry.Modified, entry.Published)
	}
	if entry.Summary == "" {
		t.Error("entry lost its other fields")
	}
}

func TestWriteRefusesMisnamedEntry(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/osv/GO-2022-1059.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "GO-2000-0001.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(dir, t.TempDir(), time.Now()); err == nil {
		t.Fatal("Write accepted a file not named after its entry")
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
