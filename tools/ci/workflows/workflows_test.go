package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPins(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "w.yml")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "steps:\n  - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1\n  - uses: ./.github/actions/local\n  - run: make test\n"
	if err := CheckPins([]string{write(good)}); err != nil {
		t.Errorf("pinned workflow refused: %v", err)
	}
	for _, bad := range []string{
		"steps:\n  - uses: actions/checkout@v7\n",
		"steps:\n  - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1\n", // no version comment
		"steps:\n  - uses: github/codeql-action/upload-sarif@main # v4\n",
	} {
		err := CheckPins([]string{write(bad)})
		if err == nil || !strings.Contains(err.Error(), "full commit SHA") {
			t.Errorf("CheckPins(%q) = %v, want a refusal", bad, err)
		}
	}
	// The repository's own workflows pass.
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", ".github", "workflows", "*.yml"))
	if len(files) == 0 {
		t.Fatal("no workflow found")
	}
	if err := CheckPins(files); err != nil {
		t.Error(err)
	}
}
