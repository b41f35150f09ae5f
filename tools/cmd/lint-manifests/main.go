// Command lint-manifests checks k8s/ and its rendered overlays with kube-score,
// using the settings in k8s/kube-score.conf. It exits 1 on any CRITICAL or
// WARNING finding, 2 on a bad command line. It needs Go and kubectl (which
// renders the overlays with its built-in kustomize), no cluster. Run it from the
// repository root: make lint-manifests.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"scalable-app/tools/internal/cli"
	"scalable-app/tools/internal/command"
	kubectlpkg "scalable-app/tools/internal/kubectl"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/test/lint"
	"scalable-app/tools/test/testcluster"
)

func main() {
	cli.Main("lint-manifests", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lint-manifests", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "", "repository root (holds k8s/; default: the checkout this runs in)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: lint-manifests [--root DIR]\n\nLints k8s/*.yaml and the rendered overlays with kube-score (settings: k8s/kube-score.conf).\nNeeds Go and kubectl (with kustomize built in), no cluster.")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stderr); err != nil {
		return err
	}
	if *root == "" {
		var err error
		if *root, err = repo.Root(); err != nil {
			return err
		}
	}
	logf := func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }

	cfg, err := lint.ReadConfig(*root + "/" + lint.ConfigPath)
	if err != nil {
		return err
	}
	kubectl, err := kubectlpkg.Find(testcluster.ConfigFromEnv(os.Getenv).KubectlPath())
	if err != nil {
		return err
	}
	runner := command.New(command.OS{}, stderr)
	bin, err := lint.Binary(ctx, runner, cfg, logf)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lint-manifests-")
	if err != nil {
		return fmt.Errorf("make a scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)
	files, err := lint.Inputs(ctx, kubectlpkg.Kubectl{Run: runner, Bin: kubectl}, *root, dir)
	if err != nil {
		return err
	}
	findings, _, err := lint.Score(ctx, runner, bin, cfg, files)
	if err != nil {
		return err
	}
	checks := make([]string, 0, len(cfg.Ignore))
	for c := range cfg.Ignore {
		checks = append(checks, c)
	}
	sort.Strings(checks)
	fmt.Fprintf(stdout, "kube-score %s on %d files; silenced checks (%s):\n", cfg.Version, len(files), lint.ConfigPath)
	for _, c := range checks {
		fmt.Fprintf(stdout, "  %s: %s\n", c, cfg.Ignore[c])
	}
	for _, f := range findings {
		fmt.Fprintln(stdout, f.Line)
	}
	if len(findings) > 0 {
		return fmt.Errorf("%d findings", len(findings))
	}
	fmt.Fprintln(stdout, "no critical or warning finding")
	return nil
}
