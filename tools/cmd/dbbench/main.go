// Command dbbench measures the guestbook API on a real PostgreSQL against a
// bare net/http + pgx handler and the seed's Flask stack, and prints a
// Markdown report (see package dbbench).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/test/dbbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		fmt.Fprintf(os.Stderr, "dbbench: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "dbbench: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a bad command line (exit status 2, as flag's).
type usageError struct{ error }

func run(ctx context.Context, args []string) error {
	// -serve-bare PORT URL POOL: the ceiling, started by the benchmark itself.
	if len(args) == 4 && args[0] == "-serve-bare" {
		port, err1 := strconv.Atoi(args[1])
		pool, err2 := strconv.Atoi(args[3])
		if err := errors.Join(err1, err2); err != nil {
			return usageError{fmt.Errorf("-serve-bare PORT URL POOL: %w", err)}
		}
		return dbbench.ServeBare(port, args[2], pool)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to serve the bare handler: %w", err)
	}
	o := dbbench.Options{Run: command.New(command.OS{}, io.Discard), Log: os.Stderr, Out: os.Stdout, Self: []string{self}}
	fs := flag.NewFlagSet("dbbench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: dbbench [flags]\n\nPOST and GET /api/messages throughput and latency on a real PostgreSQL (started here, Debian's package),\n"+
			"through scalable-app, a bare net/http + pgx handler and the seed's Flask stack. Markdown report on stdout.\n\n")
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of each load run")
	fs.IntVar(&o.Connections, "connections", 50, "keep-alive clients (each its own connection)")
	fs.IntVar(&o.Rounds, "rounds", 3, "runs of each server per workload, one of each a round; the best counts, and the median of the rounds' ratios to Flask")
	fs.BoolVar(&o.Flask, "flask", true, "also measure the seed's stack (Flask, psycopg2, gunicorn: installed from Debian when missing)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q (see -help)", fs.Args())}
	}
	if o.Duration <= 0 || o.Connections < 1 || o.Rounds < 1 {
		return usageError{fmt.Errorf("-duration, -connections and -rounds must be positive")}
	}
	return dbbench.Run(ctx, o)
}
