// Command pipeline is `make pipeline`: build, test, scan, sign, deploy to
// test and promote to prod, on this machine, against the test cluster (or
// the cluster KUBECONFIG names, whose nodes pull from localhost:5001) and
// the local registry, which it starts when none answers.
//
//	pipeline [flags]                         the whole pipeline on the checkout
//	pipeline deploy --env E IMAGE@DIGEST     one signed digest into test or prod
//	pipeline registry up|down                start or stop (and empty) the registry
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scalable-app/tools/ci/pipeline"
	"scalable-app/tools/ci/registry"
	"scalable-app/tools/ci/scan"
	"scalable-app/tools/ci/sign"
	"scalable-app/tools/internal/cli"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/gotool"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

func main() {
	cli.Main("pipeline", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "deploy":
			return deploy(ctx, args[1:], stdout, stderr)
		case "registry":
			return registryCmd(ctx, args[1:], stdout, stderr)
		}
	}
	return runPipeline(ctx, args, stdout, stderr)
}

// common are the flags every subcommand that deploys shares.
type common struct {
	root           string
	keyDir         string
	greeting       string
	rolloutTimeout time.Duration
}

func (c *common) flags(fs *flag.FlagSet) {
	keys, _ := sign.DefaultKeyDir()
	fs.StringVar(&c.root, "root", "", "the checkout to build and whose overlays are applied (default: the one this runs in)")
	fs.StringVar(&c.keyDir, "key-dir", keys, "the cosign key pair (cosign.key, cosign.pub, cosign.password), generated there on first use")
	fs.StringVar(&c.greeting, "greeting", load.Greeting, "what GET / must answer through the Ingress after a deploy")
	fs.DurationVar(&c.rolloutTimeout, "rollout-timeout", 3*time.Minute, "how long a rollout, and each wait of the smoke test, may take")
}

func runPipeline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.flags(fs)
	skip := fs.String("skip", "", "comma-separated stages not to run: test, scan (when CI ran them on this commit already)")
	artifacts := fs.String("artifacts", "", "the run's reports: build, test and push logs, scans and SBOM, pipeline.json (default: artifacts/pipeline in the checkout; emptied first)")
	failOn := fs.String("fail-on", "HIGH", "the scan stage fails on a finding of this severity or above")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pipeline [flags]\n       pipeline deploy --env test|prod IMAGE@DIGEST\n       pipeline registry up|down\n\n"+
			"Stages: %s. A failed stage stops the run; a failed rollout or smoke test\n"+
			"puts the previous digest back. Needs root (Docker, the registry), the test cluster up\n"+
			"(make cluster-up) or KUBECONFIG, and prod's database Secret (the README).\n\n", strings.Join(pipeline.Stages, ", "))
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stderr); err != nil {
		return err
	}
	if err := scan.ValidThreshold(*failOn); err != nil {
		fmt.Fprintln(stderr, "pipeline:", err)
		return cli.Usage(err)
	}
	root, err := c.rootDir()
	if err != nil {
		return err
	}
	if *artifacts == "" {
		*artifacts = filepath.Join(root, "artifacts", "pipeline")
	}
	if err := os.RemoveAll(*artifacts); err != nil {
		return fmt.Errorf("empty %s: %w", *artifacts, err)
	}
	if err := os.MkdirAll(*artifacts, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", *artifacts, err)
	}
	cmdLog, err := os.Create(filepath.Join(*artifacts, "commands.log"))
	if err != nil {
		return err
	}
	defer cmdLog.Close()
	runner := command.New(command.OS{}, cmdLog)
	logf := func(f string, a ...any) { fmt.Fprintf(stdout, "  "+f+"\n", a...) }

	if err := upRegistry(ctx, runner, stdout); err != nil {
		return err
	}
	d, err := c.deployer(ctx, runner, root, nil, stdout, logf)
	if err != nil {
		return err
	}
	var skipped []string
	if *skip != "" {
		skipped = strings.Split(*skip, ",")
	}
	rep, err := pipeline.Run(ctx, pipeline.Options{
		Root: root, Registry: registry.Name, Skip: skipped, Artifacts: *artifacts, Run: runner, Out: stdout, Deployer: d,
		Scan: func(ctx context.Context, image, out string) error {
			return scan.Check(ctx, scan.CheckOptions{Root: root, Image: image, Out: out, FailOn: *failOn, Run: runner, Stdout: stdout, Logf: logf})
		},
	})
	rep.Print(stdout)
	fmt.Fprintf(stdout, "reports: %s\n", *artifacts)
	return err
}

func deploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pipeline deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.flags(fs)
	envName := fs.String("env", "test", "the environment: test or prod (prod takes only the digest test verified)")
	underLoad := fs.Bool("under-load", false, "deploy under a load through the Ingress that must see no failed request")
	var id sign.Identity
	fs.StringVar(&id.SubjectRegexp, "certificate-identity-regexp", "", "verify a keyless (Sigstore) signature whose certificate names this identity, instead of --key-dir's key (the GitHub workflow's deploy jobs)")
	fs.StringVar(&id.Issuer, "certificate-oidc-issuer", "https://token.actions.githubusercontent.com", "the OIDC issuer of a keyless signature")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pipeline deploy [flags] IMAGE@DIGEST\n\nVerifies the digest's signature, applies the environment's overlay pinned to it,\nwaits for the rollout and smoke-tests it; a failure puts the previous image back.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return cli.Usage(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return cli.Usage(fmt.Errorf("want one IMAGE@DIGEST, got %d arguments", fs.NArg()))
	}
	env, err := pipeline.EnvNamed(*envName)
	if err != nil {
		fmt.Fprintln(stderr, "pipeline deploy:", err)
		return cli.Usage(err)
	}
	ref, err := pipeline.ParseImageRef(fs.Arg(0))
	if err == nil && ref.Digest == "" {
		err = fmt.Errorf("%s has no digest: the pipeline deploys by digest only (NAME@sha256:...)", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(stderr, "pipeline deploy:", err)
		return cli.Usage(err)
	}
	root, err := c.rootDir()
	if err != nil {
		return err
	}
	runner := command.New(command.OS{}, io.Discard)
	logf := func(f string, a ...any) { fmt.Fprintf(stdout, "  "+f+"\n", a...) }
	if strings.HasPrefix(ref.Name, registry.Name+"/") {
		// The cluster pulls it from the local registry.
		if err := upRegistry(ctx, runner, stdout); err != nil {
			return err
		}
	}
	var keyless *sign.Identity
	if id.SubjectRegexp != "" {
		keyless = &id
	}
	d, err := c.deployer(ctx, runner, root, keyless, stdout, logf)
	if err != nil {
		return err
	}
	began := time.Now()
	if _, err := d.Deploy(ctx, env, ref, *underLoad); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s runs %s (deployed in %s)\n", env.Name, ref, time.Since(began).Round(100*time.Millisecond))
	return nil
}

func registryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "down") {
		fmt.Fprintln(stderr, "Usage: pipeline registry up|down\n\n  up    start the registry at "+registry.Addr+" ("+registry.Name+") unless one answers\n  down  stop the registry this tool started and remove its images")
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return cli.Usage(fmt.Errorf("want up or down"))
	}
	r := registry.New(command.New(command.OS{}, io.Discard), stdout)
	if args[0] == "down" {
		return r.Down()
	}
	started, err := r.Up(ctx)
	if err == nil && !started {
		fmt.Fprintf(stdout, "a registry answers at %s already\n", registry.Addr)
	}
	return err
}

func (c *common) rootDir() (string, error) {
	if c.root != "" {
		return filepath.Abs(c.root)
	}
	return repo.Root()
}

// upRegistry starts the local registry unless one answers.
func upRegistry(ctx context.Context, runner *command.Runner, stdout io.Writer) error {
	started, err := registry.New(runner, stdout).Up(ctx)
	if started {
		fmt.Fprintln(stdout, "  (it keeps running for the cluster's pulls: `make registry-down` stops it)")
	}
	return err
}

// deployer provides what a deploy needs: cosign and its keys (none for a
// keyless verification), and the cluster.
func (c *common) deployer(ctx context.Context, runner *command.Runner, root string, keyless *sign.Identity, stdout io.Writer, logf func(string, ...any)) (*pipeline.Deployer, error) {
	cosign, err := gotool.Build(ctx, runner, sign.Cosign, logf)
	if err != nil {
		return nil, err
	}
	var keys sign.Keys
	if keyless == nil {
		if keys, err = sign.EnsureKeys(ctx, runner, cosign, c.keyDir); err != nil {
			return nil, err
		}
	}
	target, err := kube.Detect(ctx, runner, os.Getenv, root, logf)
	if err != nil {
		return nil, err
	}
	return &pipeline.Deployer{
		Root: root, Target: target, Greeting: c.greeting, RolloutTimeout: c.rolloutTimeout, Log: stdout,
		Signer: sign.Signer{Bin: cosign, Run: runner, Keys: keys, Keyless: keyless},
	}, nil
}
