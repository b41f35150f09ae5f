package repo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootFromFindsTheServiceModuleNotTheToolsModule(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module scalable-app\n\ngo 1.26\n")
	write("tools/go.mod", "module scalable-app/tools\n")
	deep := filepath.Join(root, "tools", "test", "e2e")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := RootFrom(deep)
	if err != nil {
		t.Fatal(err)
	}
	if got != root {
		t.Fatalf("RootFrom(%s) = %s, want %s", deep, got, root)
	}
}

func TestRootFromOutsideACheckoutSaysSo(t *testing.T) {
	if _, err := RootFrom(t.TempDir()); err == nil {
		t.Fatal("RootFrom outside any checkout: no error")
	}
}

func TestRootOfThisCheckout(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "scalable-app")); err != nil {
		t.Fatalf("Root() = %s, which has no cmd/scalable-app: %v", root, err)
	}
}
