package httpbench

import (
	"context"
	"fmt"
	"io"
	"os/exec"

	"scalable-app/tools/internal/aptget"
	"scalable-app/tools/internal/command"
)

// Python is Debian's interpreter, the one gunicorn runs on; another python3
// earlier on PATH would see other modules.
const Python = "/usr/bin/python3"

// EnsurePython makes sure gunicorn and the Python modules the seed's stack
// needs are there, installing Debian's packages (python3-<module>,
// gunicorn) when one is missing.
func EnsurePython(ctx context.Context, run *command.Runner, log io.Writer, modules ...string) error {
	var missing []string
	if _, err := exec.LookPath("gunicorn"); err != nil {
		missing = append(missing, "gunicorn")
	}
	for _, m := range modules {
		if _, err := run.Output(ctx, "look for the Python module "+m, Python, "-c", "import "+m); err != nil {
			missing = append(missing, "python3-"+m)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(log, "installing %v for the seed's Flask stack\n", missing)
	if err := aptget.Install(ctx, run, log, missing...); err != nil {
		return fmt.Errorf("the Flask benchmark needs %v: %w", missing, err)
	}
	return nil
}
