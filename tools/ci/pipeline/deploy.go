package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"scalable-app/tools/ci/sign"
	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

// Deployer puts a signed digest into an environment and proves it there.
type Deployer struct {
	Root           string // the checkout whose overlays are applied
	Target         *kube.Target
	Signer         sign.Signer
	Greeting       string        // what GET / must answer after a deploy
	RolloutTimeout time.Duration // for each rollout, and each wait of the smoke test
	Log            io.Writer     // progress lines
}

// Deployed is what a deploy did.
type Deployed struct {
	Env        Env
	Ref        ImageRef // what was asked
	Previous   string   // what ran before ("" when nothing did)
	RolledBack bool     // the deploy failed and Previous runs again
	Load       *load.Report
}

// ErrRolledBack marks a deploy that failed and was undone.
var ErrRolledBack = errors.New("rolled back")

func (d *Deployer) logf(format string, a ...any) {
	fmt.Fprintf(d.Log, "  "+format+"\n", a...)
}

// Deploy verifies ref's signature, applies env's overlay pinned to it, waits
// for the rollout and runs the smoke test. When the rollout or the smoke
// test fails, the previous image is put back and the error wraps
// ErrRolledBack. A prod deploy takes only the digest that passed test's
// smoke test; with underLoad, it runs under a load through the Ingress that
// must see no failed request.
func (d *Deployer) Deploy(ctx context.Context, env Env, ref ImageRef, underLoad bool) (Deployed, error) {
	res := Deployed{Env: env, Ref: ref}
	if ref.Digest == "" {
		return res, fmt.Errorf("deploy %s: %s has no digest; the pipeline deploys by digest only", env.Name, ref)
	}
	if err := d.Signer.Verify(ctx, ref.String()); err != nil {
		return res, fmt.Errorf("deploy %s refused: %w", env.Name, err)
	}
	d.logf("signature of %s verified (%s)", ref.Digest, d.Signer.Verifier())
	k := d.Target.Kubectl
	if env == Prod {
		if err := d.passedTest(ctx, ref); err != nil {
			return res, err
		}
		if _, err := k.Output(ctx, "get", "secret", "postgres", "-n", env.Namespace, "-o", "name"); err != nil {
			return res, errors.New("deploy prod: the database's Secret is missing; create it once (its password is never committed):\n" +
				"  kubectl create namespace prod\n  kubectl create secret generic postgres -n prod --from-literal=password=\"$(openssl rand -hex 24)\"")
		}
	}
	prev, err := d.currentImage(ctx, env)
	if err != nil {
		return res, err
	}
	res.Previous = prev
	if prev != "" {
		d.logf("%s runs %s now", env.Name, prev)
	}

	var running *load.Load
	if underLoad && prev != "" {
		running, err = load.Start(ctx, load.Options{
			Target: load.Target{URL: "http://" + d.Target.IngressAddr + "/", Host: env.Host},
			// The greeting changes with the digest: any 200 counts.
			KeepAlive: 4, Fresh: 4, Rate: 100,
		})
		if err != nil {
			return res, fmt.Errorf("start the load on %s: %w", env.Name, err)
		}
		d.logf("load through the Ingress (%s): 100 req/s", env.Host)
	}
	err = d.rollOut(ctx, env, ref)
	if err == nil {
		err = d.smoke(ctx, env, ref)
	}
	if running != nil {
		rep := running.Stop()
		res.Load = &rep
		d.logf("load during the deploy: %d sent by %s, %d failed", rep.Sent, rep.Clients(), rep.Failed())
		if err == nil && rep.Failed() > 0 {
			// The digest is sound (its smoke test passed); the rollout was not.
			return res, fmt.Errorf("deploy %s: %d of %d requests through the Ingress failed during the rollout: %s",
				env.Name, rep.Failed(), rep.Sent, strings.Join(rep.Samples, "; "))
		}
	}
	if err != nil {
		return res, d.rollBack(ctx, env, prev, err, &res)
	}
	if env == Test {
		if _, err := k.Output(ctx, "annotate", "deployment/"+deployment, "-n", env.Namespace, "--overwrite", verifiedAnnotation+"="+ref.Digest); err != nil {
			return res, fmt.Errorf("record the digest that passed test: %w", err)
		}
	}
	return res, nil
}

// passedTest refuses a digest that is not the one test runs and verified.
func (d *Deployer) passedTest(ctx context.Context, ref ImageRef) error {
	out, err := d.Target.Kubectl.Output(ctx, "get", "deployment/"+deployment, "-n", Test.Namespace, "--ignore-not-found",
		"-o", "jsonpath={.metadata.annotations.pipeline\\.scalable-app/verified-digest}")
	if err != nil {
		return fmt.Errorf("deploy prod: read what passed test: %w", err)
	}
	if got := strings.TrimSpace(out); got != ref.Digest {
		if got == "" {
			got = "none"
		}
		return fmt.Errorf("deploy prod refused: %s has not passed test (test's verified digest: %s); deploy it to test first", ref.Digest, got)
	}
	return nil
}

// currentImage is the image env's Deployment runs, or "" when there is none.
func (d *Deployer) currentImage(ctx context.Context, env Env) (string, error) {
	out, err := d.Target.Kubectl.Output(ctx, "get", "deployment/"+deployment, "-n", env.Namespace, "--ignore-not-found",
		"-o", `jsonpath={.spec.template.spec.containers[?(@.name=="`+container+`")].image}`)
	if err != nil {
		return "", fmt.Errorf("read what %s runs: %w", env.Name, err)
	}
	return strings.TrimSpace(out), nil
}

// rollOut applies the pinned overlay and waits for the database and the
// service to finish rolling out.
func (d *Deployer) rollOut(ctx context.Context, env Env, ref ImageRef) error {
	dir, err := pinnedOverlay(d.Root, env, ref)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	k := d.Target.Kubectl
	if _, err := k.Output(ctx, "apply", "-k", dir); err != nil {
		return fmt.Errorf("apply %s pinned to %s: %w", env.Overlay, ref, err)
	}
	d.logf("applied %s with image %s", env.Overlay, ref)
	timeout := "--timeout=" + d.RolloutTimeout.String()
	for _, obj := range []string{"statefulset/postgres", "deployment/" + deployment} {
		if _, err := k.Output(ctx, "rollout", "status", obj, "-n", env.Namespace, timeout); err != nil {
			return fmt.Errorf("rollout of %s in %s: %w", obj, env.Name, err)
		}
	}
	d.logf("rolled out")
	return nil
}

// rollBack puts prev back after cause, and returns the error to report.
func (d *Deployer) rollBack(ctx context.Context, env Env, prev string, cause error, res *Deployed) error {
	if prev == "" {
		return fmt.Errorf("%w; nothing ran in %s before, so there is nothing to roll back to", cause, env.Name)
	}
	d.logf("FAILED: %v", cause)
	d.logf("rolling %s back to %s", env.Name, prev)
	ref, err := ParseImageRef(prev)
	if err != nil {
		return fmt.Errorf("%w; and the previous image cannot be put back: %v", cause, err)
	}
	if err := d.rollOut(ctx, env, ref); err != nil {
		return fmt.Errorf("%w; and the rollback to %s failed: %v", cause, prev, err)
	}
	if ref.Digest != "" {
		// Done only when the failed pods are gone: until then they still
		// serve, though the rollout is complete.
		if err := d.smokePods(ctx, env, ref); err != nil {
			return fmt.Errorf("%w; and after the rollback to %s: %v", cause, prev, err)
		}
	}
	res.RolledBack = true
	return fmt.Errorf("%w; %w to %s", cause, ErrRolledBack, prev)
}
