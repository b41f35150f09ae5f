package httpbench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/repo"
)

// Best measures targets under one load and keeps the best run of each (the
// most requests per second), in the order first measured: on a noisy
// machine the best of a few runs is the most repeatable figure.
type Best struct {
	Run   *command.Runner
	Load  Load
	Log   io.Writer
	best  map[string]Result
	runs  map[string][]Result
	order []string
}

// Measure measures each target once, logging its report.
func (b *Best) Measure(ctx context.Context, targets []Target) error {
	for _, t := range targets {
		r, err := Measure(ctx, b.Run, t, b.Load, b.Log)
		if err != nil {
			return err
		}
		fmt.Fprintf(b.Log, "    %s\n", r.Report)
		if b.best == nil {
			b.best, b.runs = map[string]Result{}, map[string][]Result{}
		}
		b.runs[t.Name] = append(b.runs[t.Name], r)
		prev, seen := b.best[t.Name]
		if !seen {
			b.order = append(b.order, t.Name)
		}
		if !seen || r.RPS > prev.RPS {
			b.best[t.Name] = r
		}
	}
	return nil
}

// Of is the best result of the target named name.
func (b *Best) Of(name string) Result { return b.best[name] }

// Runs are every result of the target named name, in the order measured.
func (b *Best) Runs(name string) []Result { return b.runs[name] }

// Results are the best results, in the order first measured.
func (b *Best) Results() []Result {
	out := make([]Result, 0, len(b.order))
	for _, n := range b.order {
		out = append(out, b.best[n])
	}
	return out
}

// BuildApp builds the service's binary into dir, as the image does
// (-trimpath), and returns its path.
func BuildApp(ctx context.Context, run *command.Runner, dir string, stderr io.Writer) (string, error) {
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	app := filepath.Join(dir, "scalable-app")
	_, err = run.Exec(ctx, command.Cmd{What: "build scalable-app", Name: "go",
		Args: []string{"build", "-trimpath", "-o", app, "./cmd/scalable-app"}, Dir: root, Stderr: stderr})
	return app, err
}
