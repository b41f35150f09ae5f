// Package gomod fetches released Go modules through the module proxy, for
// the tools that build or read a third-party project at a pinned version
// (the stand-in images, the operator's CRDs). The module lands in the Go
// module cache, outside any checkout, and is read-only there.
package gomod

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"scalable-app/tools/internal/command"
)

// Download fetches module@version (a no-op when it is in the module cache)
// and returns its directory.
func Download(ctx context.Context, run *command.Runner, module, version string) (string, error) {
	out, err := run.Exec(ctx, command.Cmd{
		What: "download " + module + "@" + version, Name: "go",
		Args: []string{"mod", "download", "-json", module + "@" + version},
		// Outside any module: the checkout's go.mod has no say in it.
		Dir: os.TempDir(), Env: []string{"GOWORK=off", "GOFLAGS=-mod=mod"},
	})
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); jerr == nil && m.Error != "" {
		return "", fmt.Errorf("download %s@%s: %s", module, version, m.Error)
	}
	if err != nil {
		return "", err
	}
	if m.Dir == "" {
		return "", fmt.Errorf("download %s@%s: `go mod download -json` named no directory: %.200s", module, version, out)
	}
	return m.Dir, nil
}

// Required reads the version of module in the require lines of a go.mod file.
func Required(goMod, module string) (string, error) {
	b, err := os.ReadFile(goMod)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", goMod, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == module {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s does not require %s", goMod, module)
}
