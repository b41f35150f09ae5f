// Command pg-entrypoint is the entrypoint of the stand-in postgres image:
// it initializes an empty PGDATA from POSTGRES_USER, POSTGRES_PASSWORD and
// POSTGRES_DB, then becomes the server (see internal/postgresimage/entrypoint).
package main

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"scalable-app/tools/internal/command"
	"scalable-app/tools/internal/postgresimage/entrypoint"
)

func main() {
	err := entrypoint.Run(context.Background(), entrypoint.Options{
		Args:   os.Args[1:],
		Getenv: os.Getenv,
		Euid:   os.Geteuid(),
		Run:    command.New(command.OS{}, nil),
		Stdout: os.Stderr, // as the official image: its messages are the log
		Exec: func(path string, argv []string) error {
			return syscall.Exec(path, argv, os.Environ())
		},
	})
	fmt.Fprintf(os.Stderr, "pg-entrypoint: %v\n", err)
	os.Exit(1)
}
