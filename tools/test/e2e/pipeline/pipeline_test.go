//go:build e2e

// Package pipeline is the end-to-end proof of `make pipeline` on the test
// cluster, with the real registry, cosign and the real test and prod
// environments. It runs the pipeline command itself, three times on a copy
// of the checkout made into commits of its own:
//  1. the checkout as it is: test and prod run its digest, pulled by the
//     node from the registry;
//  2. with a changed greeting: prod is promoted to the second digest under a
//     load through the Ingress that sees no failed request;
//  3. with a greeting the smoke test does not expect: test is rolled back,
//     prod is never touched, the pipeline exits non-zero naming the stage.
//
// Then deploy refuses an unsigned digest, one signed by another key, and a
// prod deploy of the digest that failed test.
package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scalable-app/tools/ci/pipeline"
	"scalable-app/tools/ci/registry"
	"scalable-app/tools/ci/sign"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/gotool"
	"scalable-app/tools/internal/monitoringimages"
	"scalable-app/tools/internal/repo"
	"scalable-app/tools/internal/sourcetree"
	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
	"scalable-app/tools/test/testcluster"
	"scalable-app/tools/test/testcluster/images"
)

const (
	greeting2 = "Hello from Kubernetes, release 2"
	greeting3 = "Hello from a broken release"
)

type suite struct {
	root, tool, src, keys string
	run                   *command.Runner
	target                *kube.Target
	createdNS             map[string]bool
	registryWasUp         bool
	digests               []string // of runs 1 and 2
}

func TestPipeline(t *testing.T) {
	st := setup(t)
	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Run1FirstRelease", st.run1},
		{"Run2PromotedUnderLoad", st.run2},
		{"Run3BrokenReleaseRolledBack", st.run3},
		{"DeployRefusesUnverifiedDigests", st.refusals},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			t.Fatalf("%s failed; the later steps build on it", s.name)
		}
	}
}

func setup(t *testing.T) *suite {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	st := &suite{root: root, tool: filepath.Join(root, "bin", "tools", "pipeline"), run: command.New(command.OS{}, os.Stderr), createdNS: map[string]bool{}}
	if _, err := os.Stat(st.tool); err != nil {
		t.Fatalf("%v: run the suite with `make e2e-pipeline`, which builds it", err)
	}
	logf := func(f string, a ...any) { t.Logf(f, a...) }
	st.target, err = kube.Detect(ctx, st.run, os.Getenv, root, logf)
	if err != nil {
		t.Fatal(err)
	}
	if st.target.Name != "the test cluster" {
		t.Fatalf("the pipeline's images are pulled from %s on this machine: the suite needs the test cluster (make cluster-up), not %s", registry.Name, st.target.Name)
	}
	// The database's images are third-party: loaded, as in the other
	// suites. Only the service's image comes from the registry.
	for _, img := range []string{"postgres:17-trixie", monitoringimages.PostgresExporterImage} {
		if err := st.target.LoadImage(ctx, img); err != nil {
			t.Fatalf("%v (make postgres-image monitoring-images provide it)", err)
		}
	}
	st.registryWasUp = registry.Answers(ctx)
	k := st.target.Kubectl
	for _, ns := range []string{"test", "prod"} {
		exists, err := k.NamespaceExists(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		st.createdNS[ns] = !exists
		if _, err := k.Output(ctx, "get", "deployment/scalable-app", "-n", ns, "-o", "name", "--ignore-not-found"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { st.cleanup(t) })
	// Prod's database password is never committed: created as the README says.
	if st.createdNS["prod"] {
		if _, err := k.Output(ctx, "create", "namespace", "prod"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := k.Output(ctx, "create", "secret", "generic", "postgres", "-n", "prod", "--from-literal=password=e2e-"+fmt.Sprint(time.Now().UnixNano())); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	st.keys = filepath.Join(scratch, "keys")
	st.src = filepath.Join(scratch, "src")
	if err := st.copyCheckout(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// copyCheckout copies the checkout's files (tracked and untracked, as git
// sees them, not ignored ones) into a repository of its own, committed, so
// the suite can make commits without touching the real one.
func (st *suite) copyCheckout(ctx context.Context) error {
	out, err := st.run.Exec(ctx, command.Cmd{What: "list the checkout's files", Name: "git", Args: []string{"ls-files", "-z", "--cached", "--others", "--exclude-standard"}, Dir: st.root})
	if err != nil {
		return err
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		from := filepath.Join(st.root, rel)
		info, err := os.Lstat(from)
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			return err
		}
		to := filepath.Join(st.src, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			link, err := os.Readlink(from)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, to); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(from)
		if err != nil {
			return err
		}
		if err := os.WriteFile(to, b, info.Mode().Perm()); err != nil {
			return err
		}
	}
	if err := st.git(ctx, "init", "-q"); err != nil {
		return err
	}
	return st.commit(ctx, "release 1: the checkout as it is")
}

func (st *suite) git(ctx context.Context, args ...string) error {
	_, err := st.run.Exec(ctx, command.Cmd{What: "git " + args[0], Name: "git", Dir: st.src,
		Args: append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@scalable-app.invalid"}, args...)})
	return err
}

func (st *suite) commit(ctx context.Context, msg string) error {
	if err := st.git(ctx, "add", "-A"); err != nil {
		return err
	}
	return st.git(ctx, "commit", "-q", "-m", msg)
}

// pipelineRun runs the pipeline command on the copy and returns its output
// and report.
func (st *suite) pipelineRun(t *testing.T, ctx context.Context, args ...string) (string, pipeline.Report, error) {
	t.Helper()
	args = append([]string{"--root", st.src, "--key-dir", st.keys}, args...)
	cmd := exec.CommandContext(ctx, st.tool, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	err := cmd.Run()
	t.Logf("pipeline %s: %v after %s\n%s", strings.Join(args, " "), err, time.Since(began).Round(time.Second), out.String())
	var rep pipeline.Report
	b, rerr := os.ReadFile(filepath.Join(st.src, "artifacts", "pipeline", "pipeline.json"))
	if rerr == nil {
		rerr = json.Unmarshal(b, &rep)
	}
	if rerr != nil {
		t.Fatalf("read the pipeline's report: %v", rerr)
	}
	return out.String(), rep, err
}

func (st *suite) deployed(t *testing.T, ctx context.Context, ns string) string {
	t.Helper()
	out, err := st.target.Kubectl.Output(ctx, "get", "deployment/scalable-app", "-n", ns, "-o", `jsonpath={.spec.template.spec.containers[?(@.name=="scalable-app")].image}`)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// greeting waits up to 30 s for host to answer want (the Ingress
// controller forgets removed pods within seconds) and returns the last answer.
func (st *suite) greeting(t *testing.T, ctx context.Context, host, want string) string {
	t.Helper()
	last := ""
	err := kube.Poll(ctx, 30*time.Second, 200*time.Millisecond, "GET / of "+host, func(ctx context.Context) (bool, string, error) {
		rep, err := load.Get(ctx, load.Target{URL: "http://" + st.target.IngressAddr + "/", Host: host})
		if err != nil {
			return false, err.Error(), nil
		}
		last = strings.TrimSpace(rep.Body)
		return last == want, last, nil
	})
	if err != nil {
		t.Logf("%v", err)
	}
	return last
}

func stepContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (st *suite) run1(t *testing.T) {
	ctx := stepContext(t, 20*time.Minute)
	// make test ran on this commit before the suite (.ci/run); the scan
	// stage runs here, on the pipeline's own image.
	_, rep, err := st.pipelineRun(t, ctx, "--skip", "test")
	if err != nil {
		t.Fatalf("the first run failed: %v", err)
	}
	ref := registry.Name + "/scalable-app@" + rep.Digest
	if !strings.HasSuffix(rep.Image, ":"+rep.Commit) {
		t.Errorf("pushed %s, want it tagged with the commit %s", rep.Image, rep.Commit)
	}
	for _, ns := range []string{"test", "prod"} {
		if got := st.deployed(t, ctx, ns); got != ref {
			t.Errorf("%s's Deployment runs %s, want %s", ns, got, ref)
		}
	}
	st.checkPulled(t, ctx, rep.Digest)
	for _, s := range rep.Stages {
		if s.Result != "ok" && s.Result != "skipped" {
			t.Errorf("stage %s: %s", s.Name, s.Result)
		}
	}
	for _, f := range []string{"scan/trivy-image.json", "pipeline.json", "build.log", "push.log"} {
		if _, err := os.Stat(filepath.Join(st.src, "artifacts", "pipeline", f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
	st.digests = append(st.digests, rep.Digest)
}

// checkPulled proves the node pulled digest from the registry: the kubelet's
// Pulled event names the registry, and containerd keeps the reference by
// digest, which an imported (side-loaded) archive does not have.
func (st *suite) checkPulled(t *testing.T, ctx context.Context, digest string) {
	t.Helper()
	out, err := st.target.Kubectl.Output(ctx, "get", "events", "-n", "test", "--field-selector", "reason=Pulled", "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}")
	if err != nil {
		t.Fatal(err)
	}
	want := `Successfully pulled image "` + registry.Name + "/scalable-app@" + digest + `"`
	if !strings.Contains(out, want) {
		t.Errorf("no kubelet event %s in test; Pulled events:\n%s", want, out)
	}
	store := images.Store{Runner: st.run, Socket: testcluster.ConfigFromEnv(os.Getenv).ContainerdSocket()}
	byDigest := registry.Name + "/scalable-app@" + digest
	if has, err := store.Has(ctx, byDigest); err != nil || !has {
		t.Errorf("containerd has no image %s (%v)", byDigest, err)
	}
	t.Logf("pulled by the node from %s: %s", registry.Name, digest)
}

func (st *suite) run2(t *testing.T) {
	ctx := stepContext(t, 15*time.Minute)
	if err := sourcetree.SetGreeting(st.src, greeting2); err != nil {
		t.Fatal(err)
	}
	if err := st.commit(ctx, "release 2: a new greeting"); err != nil {
		t.Fatal(err)
	}
	_, rep, err := st.pipelineRun(t, ctx, "--skip", "test,scan", "--greeting", greeting2)
	if err != nil {
		t.Fatalf("the second run failed: %v", err)
	}
	if rep.Digest == st.digests[0] {
		t.Fatalf("the second release has the first one's digest %s", rep.Digest)
	}
	ref := registry.Name + "/scalable-app@" + rep.Digest
	if got := st.deployed(t, ctx, "prod"); got != ref {
		t.Errorf("prod runs %s, want the second digest %s", got, ref)
	}
	if got := st.greeting(t, ctx, pipeline.Prod.Host, greeting2); got != greeting2 {
		t.Errorf("prod answers %q, want %q", got, greeting2)
	}
	var promo *pipeline.StageResult
	for i := range rep.Stages {
		if rep.Stages[i].Name == pipeline.StagePromo {
			promo = &rep.Stages[i]
		}
	}
	switch {
	case promo == nil || promo.Load == nil:
		t.Fatalf("the promotion ran under no load: %+v", rep.Stages)
	case promo.Load.Failed != 0 || promo.Load.Sent < 500:
		t.Errorf("promotion under load: %d requests by %s, %d failed (%v); want at least 500 and 0 failed",
			promo.Load.Sent, promo.Load.Clients, promo.Load.Failed, promo.Load.Samples)
	default:
		t.Logf("promotion to the second digest: %d requests through the Ingress by %s, 0 failed", promo.Load.Sent, promo.Load.Clients)
	}
	st.digests = append(st.digests, rep.Digest)
}

func (st *suite) run3(t *testing.T) {
	ctx := stepContext(t, 15*time.Minute)
	k := st.target.Kubectl
	prodGen, err := k.Output(ctx, "get", "deployment/scalable-app", "-n", "prod", "-o", "jsonpath={.metadata.generation}")
	if err != nil {
		t.Fatal(err)
	}
	if err := sourcetree.SetGreeting(st.src, greeting3); err != nil {
		t.Fatal(err)
	}
	if err := st.commit(ctx, "release 3: a greeting the smoke test does not expect"); err != nil {
		t.Fatal(err)
	}
	out, rep, err := st.pipelineRun(t, ctx, "--skip", "test,scan", "--greeting", greeting2, "--rollout-timeout", "1m")
	if err == nil {
		t.Fatal("the broken release's pipeline exited 0")
	}
	if !strings.Contains(out, "stage deploy-test failed") || !strings.Contains(out, "rolled back") {
		t.Errorf("the failure does not name the stage and the rollback:\n%s", out)
	}
	want := registry.Name + "/scalable-app@" + st.digests[1]
	if got := st.deployed(t, ctx, "test"); got != want {
		t.Errorf("test runs %s after the rollback, want the second digest %s", got, want)
	}
	if got := st.greeting(t, ctx, pipeline.Test.Host, greeting2); got != greeting2 {
		t.Errorf("test answers %q after the rollback, want %q", got, greeting2)
	}
	if got := st.deployed(t, ctx, "prod"); got != want {
		t.Errorf("prod runs %s, want the second digest %s untouched", got, want)
	}
	if got, _ := k.Output(ctx, "get", "deployment/scalable-app", "-n", "prod", "-o", "jsonpath={.metadata.generation}"); got != prodGen {
		t.Errorf("prod's Deployment changed (generation %s -> %s)", prodGen, got)
	}
	if got := st.greeting(t, ctx, pipeline.Prod.Host, greeting2); got != greeting2 {
		t.Errorf("prod answers %q, want %q", got, greeting2)
	}
	for _, s := range rep.Stages {
		if s.Name == pipeline.StagePromo && s.Result != "not run" {
			t.Errorf("promote-prod: %s, want not run", s.Result)
		}
	}
	st.digests = append(st.digests, rep.Digest)
}

// refusals: deploy verifies before it applies anything.
func (st *suite) refusals(t *testing.T) {
	ctx := stepContext(t, 10*time.Minute)
	test2 := registry.Name + "/scalable-app@" + st.digests[1]
	// An image pushed by hand, never signed.
	dir := t.TempDir()
	df := fmt.Sprintf("FROM %s/scalable-app:%s\nLABEL pushed-by-hand=true\n", registry.Name, "latest-e2e")
	if err := st.run.Run(ctx, "tag the second release", "docker", "tag", test2, registry.Name+"/scalable-app:latest-e2e"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	unsigned := registry.Name + "/scalable-app:unsigned-e2e"
	if _, err := st.run.Exec(ctx, command.Cmd{What: "build an unsigned image", Name: "docker", Args: []string{"build", "-q", "-t", unsigned, dir}, Env: []string{"DOCKER_BUILDKIT=0"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.run.Run(ctx, "push the unsigned image by hand", "docker", "push", unsigned); err != nil {
		t.Fatal(err)
	}
	digests, err := st.run.Output(ctx, "read its digest", "docker", "image", "inspect", "--format", "{{index .RepoDigests 0}}", unsigned)
	if err != nil {
		t.Fatal(err)
	}
	unsignedRef := strings.TrimSpace(string(digests))
	st.refused(t, ctx, "test", unsignedRef, "not signed by the pipeline's key")

	// The same image signed by another key.
	cosign, err := gotool.Build(ctx, st.run, sign.Cosign, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sign.EnsureKeys(ctx, st.run, cosign, filepath.Join(dir, "other-keys"))
	if err != nil {
		t.Fatal(err)
	}
	if err := (sign.Signer{Bin: cosign, Run: st.run, Keys: other}).Sign(ctx, unsignedRef); err != nil {
		t.Fatal(err)
	}
	st.refused(t, ctx, "test", unsignedRef, "not signed by the pipeline's key")

	// The broken release is signed by the pipeline, but failed test.
	st.refused(t, ctx, "prod", registry.Name+"/scalable-app@"+st.digests[2], "has not passed test")
	for _, ns := range []string{"test", "prod"} {
		if got := st.deployed(t, ctx, ns); got != test2 {
			t.Errorf("%s runs %s after the refusals, want %s", ns, got, test2)
		}
	}
}

func (st *suite) refused(t *testing.T, ctx context.Context, env, ref, why string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, st.tool, "deploy", "--root", st.src, "--key-dir", st.keys, "--env", env, ref)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("deploy --env %s %s succeeded, want it refused (%s):\n%s", env, ref, why, out)
		return
	}
	if !strings.Contains(string(out), why) {
		t.Errorf("deploy --env %s %s failed without saying %q:\n%s", env, ref, why, out)
		return
	}
	// Verification by key is offline: cosign must not have gone for
	// Sigstore's trust data on the internet.
	if strings.Contains(string(out), "TUF") {
		t.Errorf("deploy --env %s %s: cosign reached for Sigstore's TUF repository:\n%s", env, ref, out)
	}
	t.Logf("deploy --env %s %s refused: %s", env, ref, strings.TrimSpace(string(out)))
}

func (st *suite) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	k := st.target.Kubectl
	for _, ns := range []string{"test", "prod"} {
		if st.createdNS[ns] {
			if _, err := k.Output(ctx, "delete", "namespace", ns, "--ignore-not-found", "--wait=false"); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			continue
		}
		if _, err := k.Output(ctx, "delete", "-n", ns, "--ignore-not-found",
			"deployment/scalable-app", "service/scalable-app", "ingress/scalable-app", "poddisruptionbudget/scalable-app",
			"statefulset/postgres", "service/postgres", "service/postgres-headless", "secret/postgres"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if !st.registryWasUp {
		if out, err := exec.CommandContext(ctx, st.tool, "registry", "down").CombinedOutput(); err != nil {
			t.Errorf("cleanup: registry down: %v: %s", err, out)
		}
	}
}
