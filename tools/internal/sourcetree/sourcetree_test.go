package sourcetree

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scalable-app/tools/internal/repo"
)

func TestCopyAndEditTheGreeting(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Copy(root, dst); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go.mod", "go.sum", "cmd/scalable-app/main.go", "internal/server/server.go"} {
		if _, err := os.Stat(filepath.Join(dst, name)); err != nil {
			t.Errorf("copy lacks %s: %v", name, err)
		}
	}
	rel, err := GreetingFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetGreeting(dst, `Hello "edited"`); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dst, rel))
	if !strings.Contains(string(b), `const Greeting = "Hello \"edited\""`) {
		t.Fatalf("greeting not rewritten in %s", rel)
	}
	orig, _ := os.ReadFile(filepath.Join(root, rel))
	if strings.Contains(string(orig), "edited") {
		t.Fatal("the edit reached the original tree")
	}
	if _, err := GreetingFile(t.TempDir()); err == nil {
		t.Fatal("no error for a tree without the greeting")
	}
}
