// Package sourcetree copies the service's source and edits its greeting the
// way a developer saving a file does. The hot reloader's tests, its
// benchmark and the dev-loop suite use it to make real edits to a copy.
package sourcetree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// buildInputs are what building ./cmd/scalable-app reads.
func buildInputs() []string { return []string{"go.mod", "go.sum", "cmd", "internal"} }

// Copy copies the module's build inputs from root into dst, readable by
// everyone (a dev pod's user reads them too). Only regular files are copied.
func Copy(root, dst string) error {
	for _, name := range buildInputs() {
		err := filepath.WalkDir(filepath.Join(root, name), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			target := filepath.Join(dst, rel)
			if d.IsDir() {
				return os.MkdirAll(target, 0o755)
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		})
		if err != nil {
			return fmt.Errorf("copy source %s to %s: %w", name, dst, err)
		}
	}
	return nil
}

var greetingDecl = regexp.MustCompile(`const Greeting = .*`)

// GreetingFile is the slash-separated path, relative to dir, of the file
// declaring the greeting constant.
func GreetingFile(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "internal", "server", "*.go"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && greetingDecl.Match(b) {
			rel, err := filepath.Rel(dir, f)
			if err != nil {
				return "", err
			}
			return filepath.ToSlash(rel), nil
		}
	}
	return "", errors.New("no file in internal/server declares const Greeting")
}

// WithGreeting returns src with the greeting constant set to the Go
// expression expr (a quoted string, or anything else to break the build).
func WithGreeting(src []byte, expr string) []byte {
	return greetingDecl.ReplaceAllLiteral(src, []byte("const Greeting = "+expr))
}

// SetGreeting rewrites the greeting constant in dir to text.
func SetGreeting(dir, text string) error {
	return SetGreetingExpr(dir, strconv.Quote(text))
}

// SetGreetingExpr rewrites the greeting constant in dir to the expression.
func SetGreetingExpr(dir, expr string) error {
	rel, err := GreetingFile(dir)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("edit greeting: %w", err)
	}
	if err := os.WriteFile(p, WithGreeting(b, expr), 0o644); err != nil {
		return fmt.Errorf("edit greeting: %w", err)
	}
	return nil
}
