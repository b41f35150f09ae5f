// Command lint-workflows is `make lint`'s check of .github/workflows: every
// action pinned by its full commit, then actionlint. It needs Go and, once
// actionlint is built, no network.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"scalable-app/tools/ci/workflows"
	"scalable-app/tools/internal/cli"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
)

func main() {
	cli.Main("lint-workflows", func(ctx context.Context) error {
		if len(os.Args) > 1 {
			fmt.Fprintln(os.Stderr, "usage: lint-workflows (from the repository; lints .github/workflows with actionlint "+workflows.Actionlint.Version+")")
			return cli.Usage(errors.New("no arguments expected"))
		}
		root, err := repo.Root()
		if err != nil {
			return err
		}
		logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
		return workflows.Lint(ctx, command.New(command.OS{}, os.Stderr), root, logf)
	})
}
