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
