//go:build e2e

package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
)

// The production image's compile step depends on the service's sources only:
// an edit to a test, a tool, a manifest or a document leaves it cached, and
// an edit to the service's code does not (the control that shows the check
// can fail). It builds a copy of the checkout, so the tree is never touched.
func (s *imageSuite) testCompileStepCached(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	src := s.copyCheckout(t, root)
	tag := "scalable-app:cache-test"
	t.Cleanup(func() {
		_ = s.run.Run(context.Background(), "remove the cache test's image", "docker", "rmi", "-f", tag)
	})

	s.build(t, src, tag) // fills the cache for this copy's sources

	for _, rel := range []string{
		"README.md",
		"k8s/base/deployment.yaml",
		"internal/server/server_test.go",
		"tools/internal/repo/repo.go", // in the build context, for the dev image
		"tools/test/e2e/image/image_test.go",
	} {
		appendLine(t, filepath.Join(src, rel), "\n// edited by the cache test\n")
	}
	if out := s.build(t, src, tag); !compileCached(t, out) {
		t.Fatalf("edits outside the service's sources re-ran the compile step:\n%s", command.LastLines(out, 40))
	}

	// A line no earlier run wrote, or BuildKit would have the result cached.
	appendLine(t, filepath.Join(src, "internal/server/server.go"), fmt.Sprintf("\n// edited by the cache test at %d\n", time.Now().UnixNano()))
	if out := s.build(t, src, tag); compileCached(t, out) {
		t.Fatalf("an edit to internal/server/server.go left the compile step cached: the check sees nothing:\n%s", command.LastLines(out, 40))
	}
}

// copyCheckout copies the files git knows (tracked and untracked but not
// ignored) into a temporary directory.
func (s *imageSuite) copyCheckout(t *testing.T, root string) string {
	t.Helper()
	out, err := s.run.Exec(context.Background(), command.Cmd{What: "list the checkout's files", Name: "git",
		Args: []string{"ls-files", "-z", "--cached", "--others", "--exclude-standard"}, Dir: root})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		from := filepath.Join(root, rel)
		info, err := os.Lstat(from)
		if err != nil {
			continue // deleted in the work tree
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if info.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, to); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
}

// build runs the production build with BuildKit's plain progress output,
// which says CACHED for each step it did not run.
func (s *imageSuite) build(t *testing.T, dir, tag string) string {
	t.Helper()
	var out bytes.Buffer
	if _, err := s.run.Exec(context.Background(), command.Cmd{What: "build a copy of the checkout", Name: s.builder.Command,
		Args: []string{"build", "--progress=plain", "-t", tag, "."}, Dir: dir, Env: s.builder.Env,
		Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("%v\n%s", err, command.LastLines(out.String(), 40))
	}
	return out.String()
}

// compileCached reports whether the build stage's `go build` step was
// taken from the cache.
func compileCached(t *testing.T, out string) bool {
	t.Helper()
	step := regexp.MustCompile(`(?m)^#(\d+) \[build [0-9/ ]+\] RUN .*go build`).FindStringSubmatch(out)
	if step == nil {
		t.Fatalf("no compile step of stage build in the build output:\n%s", command.LastLines(out, 40))
	}
	return regexp.MustCompile(`(?m)^#` + step[1] + ` CACHED$`).MatchString(out)
}
