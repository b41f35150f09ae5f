// Command scan is `make scan`: govulncheck and Trivy on the service, its
// image and its manifests, offline, against databases generated from the
// pinned Go vulnerability database (security/scan.conf). It prints one table,
// keeps every report in one folder, and exits 1 when a finding is at or above
// --fail-on (or cannot be graded), 2 on a bad command line.
// `scan --update-vulndb` (make vulndb-update) moves the database's pin.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"scalable-app/tools/ci/scan"
	"scalable-app/tools/ci/scan/vulndb"
	"scalable-app/tools/internal/cli"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
)

func main() {
	cli.Main("scan", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "", "repository root (default: the checkout this runs in)")
	image := fs.String("image", "scalable-app:latest", "the production image to scan, in the local Docker engine")
	out := fs.String("out", "", "the reports folder, emptied first (default: artifacts/scan in the repository)")
	failOn := fs.String("fail-on", "HIGH", "exit 1 on a finding of this severity or above (LOW, MEDIUM, HIGH, CRITICAL); ungraded ones and govulncheck's always count")
	update := fs.Bool("update-vulndb", false, "move "+scan.ConfigPath+"'s vulndb pin to the newest version on the module proxy, and scan nothing")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scan [flags]\n\nScans offline, with the scanners and data pinned in %s (built once into the tools cache):\n"+
			"  govulncheck  the service's source, and the binary in --image\n"+
			"  trivy        --image (vulnerabilities, SBOM), the Dockerfile and every rendered manifest (accepted findings: %s),\n"+
			"               the repository (secrets)\n"+
			"Needs Go, Docker (the image) and kubectl (renders the overlays; no cluster).\n\n", scan.ConfigPath, scan.IgnorePath)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stderr); err != nil {
		return err
	}
	if err := scan.ValidThreshold(*failOn); err != nil {
		fmt.Fprintln(stderr, "scan:", err)
		return cli.Usage(err)
	}
	if *root == "" {
		var err error
		if *root, err = repo.Root(); err != nil {
			return err
		}
	}
	if *out == "" {
		*out = filepath.Join(*root, "artifacts", "scan")
	}
	logf := func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }
	runner := command.New(command.OS{}, stderr)
	if *update {
		return updateVulnDB(ctx, runner, filepath.Join(*root, scan.ConfigPath), stdout)
	}
	return scan.Check(ctx, scan.CheckOptions{Root: *root, Image: *image, Out: *out, FailOn: *failOn, Run: runner, Stdout: stdout, Logf: logf})
}

// updateVulnDB asks the module proxy for the newest golang.org/x/vulndb and
// writes it into the pins file.
func updateVulnDB(ctx context.Context, run *command.Runner, conf string, stdout io.Writer) error {
	old, err := scan.ReadConfig(conf)
	if err != nil {
		return err
	}
	b, err := run.Exec(ctx, command.Cmd{What: "ask the module proxy for the newest " + vulndb.Module, Name: "go",
		Args: []string{"list", "-m", "-json", vulndb.Module + "@latest"}, Dir: os.TempDir(), Env: []string{"GOWORK=off", "GOFLAGS=-mod=mod"}})
	if err != nil {
		return err
	}
	var m struct{ Version string }
	if err := json.Unmarshal(b, &m); err != nil || m.Version == "" {
		return fmt.Errorf("read `go list -m -json %s@latest`: %v: %.200s", vulndb.Module, err, b)
	}
	if _, err := vulndb.PseudoVersionTime(m.Version); err != nil {
		return err
	}
	if m.Version == old.VulnDB {
		fmt.Fprintf(stdout, "vulndb %s is the newest\n", m.Version)
		return nil
	}
	if err := scan.SetVulnDB(conf, m.Version); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "vulndb %s -> %s (the next scan generates its databases)\n", old.VulnDB, m.Version)
	return nil
}
