package scan

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scalable-app/tools/ci/scan/vulndb"
	"scalable-app/tools/internal/cachedir"
	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/gomod"
	"scalable-app/tools/internal/gotool"
)

const (
	trivyModule = "github.com/aquasecurity/trivy"
	trivyDBMod  = "github.com/aquasecurity/trivy-db"
	// builderDir holds the module that builds Trivy's database.
	builderDir = "tools/ci/scan/trivydb"
	// trivyToolchain builds Trivy: the Go its release is built with.
	trivyToolchain = "go1.26.8"
)

// Scanners are the programs a scan runs and the databases they read, all
// generated from the pinned versions.
type Scanners struct {
	Govulncheck   string
	Trivy         string
	GovulncheckDB string    // for govulncheck -db file://
	TrivyCache    string    // Trivy's --cache-dir: its database is db/trivy.db
	DataDate      time.Time // the vulnerability data's date (the vulndb pin's)
}

// Provide builds the scanners and their databases, or finds them in the
// tools cache.
func Provide(ctx context.Context, run *command.Runner, root string, cfg Config, logf func(string, ...any)) (Scanners, error) {
	toolchain, err := gotool.ServiceToolchain(root)
	if err != nil {
		return Scanners{}, err
	}
	date, err := vulndb.PseudoVersionTime(cfg.VulnDB)
	if err != nil {
		return Scanners{}, fmt.Errorf("%s: vulndb: %w", ConfigPath, err)
	}
	s := Scanners{DataDate: date}
	s.Govulncheck, err = gotool.Build(ctx, run, gotool.Tool{
		Package: "golang.org/x/vuln/cmd/govulncheck", Version: cfg.Govulncheck, Toolchain: toolchain,
		About: "about a minute",
	}, logf)
	if err != nil {
		return Scanners{}, err
	}
	s.Trivy, err = gotool.Build(ctx, run, gotool.Tool{
		Package: trivyModule + "/cmd/trivy", Version: cfg.Trivy,
		// Its release build uses Go 1.26's experimental encoding/json/v2,
		// whose API Go 1.27 changed (json.SkipFunc is gone).
		Toolchain: trivyToolchain, Env: []string{"GOEXPERIMENT=jsonv2"},
		// The version as its release stamps it, without the v: Trivy
		// compares it with its checks' minimum versions.
		Ldflags: "-X " + trivyModule + "/pkg/version/app.ver=" + strings.TrimPrefix(cfg.Trivy, "v"),
		About:   "about 5 minutes on 2 cores",
	}, logf)
	if err != nil {
		return Scanners{}, err
	}
	builder, dbVersion, err := trivyDBBuilder(ctx, run, root, cfg, toolchain, logf)
	if err != nil {
		return Scanners{}, err
	}
	cache, err := gotool.CacheDir()
	if err != nil {
		return Scanners{}, err
	}
	dir := filepath.Join(filepath.Dir(cache), "vulndb", cfg.VulnDB+"-trivydb-"+dbVersion)
	if !cachedir.Complete(dir) {
		logf("generating the vulnerability databases from %s@%s into %s", vulndb.Module, cfg.VulnDB, dir)
		err := cachedir.Fill(dir, func(tmp string) error { return writeDatabases(ctx, run, builder, cfg.VulnDB, date, toolchain, tmp) })
		if err != nil {
			return Scanners{}, err
		}
	}
	s.GovulncheckDB = filepath.Join(dir, "govulncheck")
	s.TrivyCache = filepath.Join(dir, "trivy")
	return s, nil
}

// writeDatabases generates both databases from one copy of the OSV files.
func writeDatabases(ctx context.Context, run *command.Runner, builder, version string, date time.Time, toolchain, out string) error {
	mod, err := gomod.Download(ctx, run, vulndb.Module, version)
	if err != nil {
		return err
	}
	n, err := vulndb.Write(filepath.Join(mod, "data", "osv"), filepath.Join(out, "govulncheck"), date)
	if err != nil {
		return err
	}
	// The builder reads ROOT/govulncheck/data/osv, the layout of a vulndb
	// checkout; the module is one, linked in for the build only.
	root := filepath.Join(out, "osv-root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("prepare the OSV files: %w", err)
	}
	if err := os.Symlink(mod, filepath.Join(root, "govulndb")); err != nil {
		return fmt.Errorf("prepare the OSV files: %w", err)
	}
	_, err = run.Exec(ctx, command.Cmd{
		What: fmt.Sprintf("build Trivy's database from %d OSV entries", len(n)), Name: builder,
		Args: []string{root, filepath.Join(out, "trivy", "db"), date.Format(time.RFC3339)},
		// trivy-db runs `go list std` as it starts: outside any module, with
		// the Go the rest of the build uses.
		Dir: os.TempDir(), Env: []string{"GOTOOLCHAIN=" + toolchain},
	})
	if err != nil {
		return err
	}
	return os.RemoveAll(root)
}

// trivyDBBuilder builds tools/ci/scan/trivydb, after checking that it uses the
// trivy-db version the pinned Trivy requires (a database of another schema
// would be refused, or worse, misread).
func trivyDBBuilder(ctx context.Context, run *command.Runner, root string, cfg Config, toolchain string, logf func(string, ...any)) (string, string, error) {
	trivyDir, err := gomod.Download(ctx, run, trivyModule, cfg.Trivy)
	if err != nil {
		return "", "", err
	}
	want, err := gomod.Required(filepath.Join(trivyDir, "go.mod"), trivyDBMod)
	if err != nil {
		return "", "", err
	}
	src := filepath.Join(root, builderDir)
	got, err := gomod.Required(filepath.Join(src, "go.mod"), trivyDBMod)
	if err != nil {
		return "", "", err
	}
	if got != want {
		return "", "", fmt.Errorf("%s/go.mod requires %s %s, but trivy %s requires %s: run `cd %s && go get %s@%s && go mod tidy`",
			builderDir, trivyDBMod, got, cfg.Trivy, want, builderDir, trivyDBMod, want)
	}
	sum := sha256.New()
	for _, f := range []string{"main.go", "go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", "", fmt.Errorf("read the database builder: %w", err)
		}
		sum.Write(b)
	}
	cache, err := gotool.CacheDir()
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(cache, fmt.Sprintf("trivydb-%s-%x", want, sum.Sum(nil)[:6]))
	bin := filepath.Join(dir, "trivydb")
	if cachedir.Complete(dir) {
		return bin, want, nil
	}
	logf("building the Trivy database builder (%s) into %s (about a minute, once)", builderDir, dir)
	err = cachedir.Fill(dir, func(tmp string) error {
		_, err := run.Exec(ctx, command.Cmd{
			What: "build the Trivy database builder", Name: "go",
			Args: []string{"build", "-trimpath", "-o", filepath.Join(tmp, "trivydb"), "."}, Dir: src,
			Env: []string{"GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0", "GOTOOLCHAIN=" + toolchain},
		})
		return err
	})
	return bin, want, err
}
