// Package cli is what the tools' mains share: a context that ends on Ctrl-C
// or SIGTERM, the exit statuses (0, 1 on a failure, 2 on a bad command line,
// as flag.ExitOnError), and flag parsing that refuses stray arguments.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// BadUsage is a command line the flags reject; what is wrong has been
// printed already, with the usage.
type BadUsage struct{ error }

// Usage marks err as a bad command line: exit status 2.
func Usage(err error) error { return BadUsage{err} }

// Main runs fn and exits: 0 when it succeeds or --help was asked for, 2 on
// BadUsage, otherwise 1 with "name: error" on stderr.
func Main(name string, fn func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := fn(ctx)
	stop()
	var bad BadUsage
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, &bad):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Parse parses args with fs (which prints its own errors) and refuses
// positional arguments. It returns flag.ErrHelp for --help and a BadUsage
// for anything else wrong.
func Parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return BadUsage{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return BadUsage{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
