// Package pipeline is `make pipeline`: the delivery pipeline run on this
// machine against a real cluster and a real registry, stage by stage as the
// GitHub workflow runs it. build pushes the image, tagged with the commit,
// to the registry; test and scan stop the pipeline before anything is
// deployed; sign signs the digest; deploy-test applies the test overlay
// pinned to the digest (after verifying its signature), waits for the
// rollout and smoke-tests it; promote-prod does the same for prod, under a
// load that must see no failed request. A failed rollout or smoke test
// puts the previous digest back, and prod takes only a digest that passed
// test.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"scalable-app/tools/internal/command"
)

// Stage names, in order.
const (
	StageBuild  = "build"
	StageTest   = "test"
	StageScan   = "scan"
	StageSign   = "sign"
	StageDeploy = "deploy-test"
	StagePromo  = "promote-prod"
)

// Stages lists every stage in the order they run.
var Stages = []string{StageBuild, StageTest, StageScan, StageSign, StageDeploy, StagePromo}

// Options configure a run.
type Options struct {
	Root      string   // the checkout built and deployed
	Registry  string   // where the image is pushed: localhost:5001
	Skip      []string // stages not run (test, scan: when CI ran them already)
	Artifacts string   // the run's reports
	Run       *command.Runner
	Out       io.Writer // progress and the final table
	Deployer  *Deployer
	// Scan scans image into the reports folder out, failing on a finding.
	Scan func(ctx context.Context, image, out string) error
}

// StageResult is one line of the final table.
type StageResult struct {
	Name   string
	Took   time.Duration
	Result string      // "ok", "skipped", "FAILED", "FAILED, rolled back" or "not run"; a load is added in brackets
	Load   *LoadResult `json:",omitempty"`
}

// LoadResult is the load a deploy ran under.
type LoadResult struct {
	Clients      string // which clients sent it (they never retry)
	Sent, Failed int
	Samples      []string // the first failures
}

// Report is what a run did.
type Report struct {
	Commit   string
	Image    string // name:tag pushed
	Digest   string
	Stages   []StageResult
	Deployed map[string]string // environment: the image it runs at the end
}

// StageError names the stage that failed.
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string { return "stage " + e.Stage + " failed: " + e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// Run runs the stages in order and stops at the first failure, which it
// returns as a *StageError. The report is complete either way.
func Run(ctx context.Context, o Options) (Report, error) {
	rep := Report{Deployed: map[string]string{}}
	for _, s := range o.Skip {
		if !slices.Contains(Stages, s) {
			return rep, fmt.Errorf("no stage %q to skip; the stages: %s", s, strings.Join(Stages, ", "))
		}
	}
	if err := os.MkdirAll(o.Artifacts, 0o755); err != nil {
		return rep, fmt.Errorf("make the artifacts folder: %w", err)
	}
	var ref ImageRef
	steps := []struct {
		name string
		run  func(context.Context) (*LoadResult, error)
	}{
		{StageBuild, func(ctx context.Context) (*LoadResult, error) {
			var err error
			ref, err = o.build(ctx, &rep)
			return nil, err
		}},
		{StageTest, func(ctx context.Context) (*LoadResult, error) {
			return nil, o.logged(ctx, "test.log", command.Cmd{What: "run the tests (make test)", Name: "make", Args: []string{"test"}, Dir: o.Root})
		}},
		{StageScan, func(ctx context.Context) (*LoadResult, error) {
			return nil, o.Scan(ctx, rep.Image, filepath.Join(o.Artifacts, "scan"))
		}},
		{StageSign, func(ctx context.Context) (*LoadResult, error) {
			if err := o.Deployer.Signer.Sign(ctx, ref.String()); err != nil {
				return nil, err
			}
			return nil, o.Deployer.Signer.Verify(ctx, ref.String())
		}},
		{StageDeploy, func(ctx context.Context) (*LoadResult, error) {
			return o.deploy(ctx, Test, ref, false)
		}},
		{StagePromo, func(ctx context.Context) (*LoadResult, error) {
			return o.deploy(ctx, Prod, ref, true)
		}},
	}
	var failed error
	for _, st := range steps {
		switch {
		case failed != nil:
			rep.Stages = append(rep.Stages, StageResult{Name: st.name, Result: "not run"})
			continue
		case slices.Contains(o.Skip, st.name):
			rep.Stages = append(rep.Stages, StageResult{Name: st.name, Result: "skipped"})
			fmt.Fprintf(o.Out, "== %s: skipped\n", st.name)
			continue
		}
		fmt.Fprintf(o.Out, "== %s\n", st.name)
		began := time.Now()
		ld, err := st.run(ctx)
		took := time.Since(began).Round(100 * time.Millisecond)
		result := "ok"
		if err != nil {
			result = "FAILED"
			if errors.Is(err, ErrRolledBack) {
				result = "FAILED, rolled back"
			}
			failed = &StageError{Stage: st.name, Err: err}
		}
		if ld != nil {
			result += fmt.Sprintf(" (under load: %d requests, %d failed)", ld.Sent, ld.Failed)
		}
		fmt.Fprintf(o.Out, "== %s: %s in %s\n", st.name, result, took)
		rep.Stages = append(rep.Stages, StageResult{Name: st.name, Took: took, Result: result, Load: ld})
	}
	for _, env := range []Env{Test, Prod} {
		if img, err := o.Deployer.currentImage(ctx, env); err == nil && img != "" {
			rep.Deployed[env.Name] = img
		}
	}
	if err := rep.write(filepath.Join(o.Artifacts, "pipeline.json")); err != nil && failed == nil {
		failed = err
	}
	return rep, failed
}

// build builds the production image tagged with the commit, pushes it and
// returns its digest reference.
func (o Options) build(ctx context.Context, rep *Report) (ImageRef, error) {
	out, err := o.Run.Exec(ctx, command.Cmd{What: "read the commit to build", Name: "git", Args: []string{"rev-parse", "HEAD"}, Dir: o.Root})
	if err != nil {
		return ImageRef{}, err
	}
	rep.Commit = strings.TrimSpace(string(out))
	tag := rep.Commit
	status, err := o.Run.Exec(ctx, command.Cmd{What: "check the checkout for changes", Name: "git", Args: []string{"status", "--porcelain"}, Dir: o.Root})
	if err != nil {
		return ImageRef{}, err
	}
	if len(strings.TrimSpace(string(status))) > 0 {
		// Not the commit: say so in the tag, which must tell the truth.
		tag += "-dirty"
		fmt.Fprintf(o.Out, "  the checkout has uncommitted changes: tagging %s\n", tag)
	}
	name := o.Registry + "/" + imageName
	rep.Image = name + ":" + tag
	if err := o.logged(ctx, "build.log", command.Cmd{What: "build the production image", Name: "make",
		Args: []string{"image", "IMAGE=" + rep.Image, "REVISION=" + rep.Commit}, Dir: o.Root}); err != nil {
		return ImageRef{}, err
	}
	fmt.Fprintf(o.Out, "  built %s\n", rep.Image)
	if err := o.logged(ctx, "push.log", command.Cmd{What: "push " + rep.Image, Name: "docker", Args: []string{"push", rep.Image}}); err != nil {
		return ImageRef{}, err
	}
	digests, err := o.Run.Output(ctx, "read the pushed digest", "docker", "image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", rep.Image)
	if err != nil {
		return ImageRef{}, err
	}
	for _, d := range strings.Fields(string(digests)) {
		if strings.HasPrefix(d, name+"@") {
			ref, err := ParseImageRef(d)
			if err != nil {
				return ImageRef{}, err
			}
			rep.Digest = ref.Digest
			fmt.Fprintf(o.Out, "  pushed %s\n", ref)
			return ref, nil
		}
	}
	return ImageRef{}, fmt.Errorf("docker knows no digest of %s in %s after the push (RepoDigests: %q)", rep.Image, o.Registry, digests)
}

// logged runs c with its output in the artifacts folder.
func (o Options) logged(ctx context.Context, name string, c command.Cmd) error {
	path := filepath.Join(o.Artifacts, name)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	c.Stdout, c.Stderr = f, f
	if _, err := o.Run.Exec(ctx, c); err != nil {
		return fmt.Errorf("%w\n(whole output: %s)", err, path)
	}
	return nil
}

func (o Options) deploy(ctx context.Context, env Env, ref ImageRef, underLoad bool) (*LoadResult, error) {
	d, err := o.Deployer.Deploy(ctx, env, ref, underLoad)
	if d.Load == nil {
		return nil, err
	}
	return &LoadResult{Clients: d.Load.Clients(), Sent: d.Load.Sent, Failed: d.Load.Failed(), Samples: d.Load.Samples}, err
}

// write keeps the report as JSON in the artifacts folder.
func (r Report) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the pipeline's report: %w", err)
	}
	return nil
}

// Print writes the final table: each stage's duration and result, then
// what each environment runs.
func (r Report) Print(w io.Writer) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tDURATION\tRESULT")
	for _, s := range r.Stages {
		took := "-"
		if s.Took > 0 {
			took = s.Took.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, took, s.Result)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if r.Image != "" {
		fmt.Fprintf(w, "built:  %s (commit %s)\n", r.Image, r.Commit)
	}
	if r.Digest != "" {
		fmt.Fprintf(w, "digest: %s\n", r.Digest)
	}
	for _, env := range []string{"test", "prod"} {
		img := r.Deployed[env]
		if img == "" {
			img = "(nothing deployed)"
		}
		fmt.Fprintf(w, "%-8s%s\n", env+":", img)
	}
}
