// Package workflows checks the GitHub workflows offline: every action pinned
// by its full commit, and actionlint (built once from the Go module proxy at a
// pinned version into the tools cache) on every file.
package workflows

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/gotool"
)

// Actionlint is the pinned linter.
var Actionlint = gotool.Tool{Package: "github.com/rhysd/actionlint/cmd/actionlint", Version: "v1.7.12", About: "about a minute"}

// Lint checks every workflow under root/.github/workflows.
func Lint(ctx context.Context, run *command.Runner, root string, logf func(string, ...any)) error {
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no workflow in .github/workflows (%v)", err)
	}
	if err := CheckPins(files); err != nil {
		return err
	}
	bin, err := gotool.Build(ctx, run, Actionlint, logf)
	if err != nil {
		return err
	}
	// actionlint prints each problem with its file and line.
	_, err = run.Exec(ctx, command.Cmd{What: "lint the workflows", Name: bin, Args: append([]string{"-color=false"}, files...),
		Dir: root, Stdout: os.Stdout, Stderr: os.Stderr})
	return err
}

// pinned is a step that uses an action by its full commit, with the version
// in a comment: a tag can be moved to other code, a commit cannot.
var (
	usesLine = regexp.MustCompile(`^\s*(?:-\s+)?uses:\s*(\S+)(.*)$`)
	pinned   = regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)
	version  = regexp.MustCompile(`^\s*#\s*v\d`)
)

// CheckPins refuses an action referenced by tag or branch, or pinned
// without its version beside it. Local actions (./...) are the repository's own.
func CheckPins(files []string) error {
	var bad []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read %s: %w", f, err)
		}
		for n, line := range strings.Split(string(b), "\n") {
			m := usesLine.FindStringSubmatch(line)
			if m == nil || strings.HasPrefix(m[1], "./") {
				continue
			}
			if !pinned.MatchString(m[1]) || !version.MatchString(m[2]) {
				bad = append(bad, fmt.Sprintf("%s:%d: %s: pin the action by its full commit SHA, with `# vX.Y.Z` after it", filepath.Base(f), n+1, m[1]))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("unpinned actions:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}
