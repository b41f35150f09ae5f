// Command lint-workflows is `make lint`'s check of .github/workflows: every
// action pinned by its full commit, then actionlint. It needs Go and, once
// actionlint is built, no network.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"scalable-app/tools/ci/workflows"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: lint-workflows (from the repository; lints .github/workflows with actionlint "+workflows.Actionlint.Version+")")
		os.Exit(2)
	}
	root, err := repo.Root()
	if err == nil {
		logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
		err = workflows.Lint(ctx, command.New(command.OS{}, os.Stderr), root, logf)
	}
	if err != nil {
		stop()
		fmt.Fprintln(os.Stderr, "lint-workflows:", err)
		os.Exit(1)
	}
}
