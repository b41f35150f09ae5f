package scan

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"scalable-app/tools/ci/scan/vulndb"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/kubectl"
	"scalable-app/tools/test/testcluster"
)

// CheckOptions are what Check needs: `make scan`'s flags.
type CheckOptions struct {
	Root   string // the checkout whose source, Dockerfile and manifests are scanned
	Image  string // the production image, in the local Docker engine
	Out    string // the reports folder
	FailOn string // the severity threshold (ValidThreshold)
	Run    *command.Runner
	Stdout io.Writer // the summary table
	Logf   func(string, ...any)
}

// Check is the whole scan: the pinned scanners provided, the five scans
// run, the table printed. Findings at or above FailOn are an error.
func Check(ctx context.Context, o CheckOptions) error {
	cfg, err := ReadConfig(filepath.Join(o.Root, ConfigPath))
	if err != nil {
		return err
	}
	kc, err := kubectl.Find(testcluster.ConfigFromEnv(os.Getenv).KubectlPath())
	if err != nil {
		return err
	}
	if _, err := o.Run.Output(ctx, "look up the image to scan", "docker", "image", "inspect", "--format", "{{.Id}}", o.Image); err != nil {
		return fmt.Errorf("%w\nbuild it with `make image`", err)
	}
	scanners, err := Provide(ctx, o.Run, o.Root, cfg, o.Logf)
	if err != nil {
		return err
	}
	o.Logf("scanning offline with govulncheck %s and trivy %s; vulnerability data: %s@%s (%s)",
		cfg.Govulncheck, cfg.Trivy, vulndb.Module, cfg.VulnDB, scanners.DataDate.Format("2006-01-02"))
	results, err := Run(ctx, Options{Root: o.Root, Image: o.Image, Binary: "/scalable-app", Out: o.Out, IgnoreFile: filepath.Join(o.Root, IgnorePath), Run: o.Run,
		Kubectl: kubectl.Kubectl{Run: o.Run, Bin: kc}, Logf: o.Logf}, scanners)
	if err != nil {
		return err
	}
	if n := Summarize(o.Stdout, results, o.FailOn, o.Out); n > 0 {
		return fmt.Errorf("%d findings fail (--fail-on %s)", n, o.FailOn)
	}
	fmt.Fprintln(o.Stdout, "\nno failing finding")
	return nil
}
