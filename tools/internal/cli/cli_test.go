package cli

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := flag.NewFlagSet("tool", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("root", "", "")
		return fs
	}
	var out strings.Builder
	if err := Parse(newFS(), []string{"--root", "x"}, &out); err != nil {
		t.Errorf("good flags: %v", err)
	}
	if err := Parse(newFS(), []string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v, want flag.ErrHelp", err)
	}
	var bad BadUsage
	if err := Parse(newFS(), []string{"--nope"}, &out); !errors.As(err, &bad) {
		t.Errorf("unknown flag: %v, want BadUsage", err)
	}
	if err := Parse(newFS(), []string{"stray"}, &out); !errors.As(err, &bad) || !strings.Contains(out.String(), `tool: unexpected argument "stray"`) {
		t.Errorf("stray argument: %v, printed %q", err, out.String())
	}
}
