package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// The schema, as numbered SQL files: a new migration is the next number,
// never an edit of one already released.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate applies the migrations not applied yet, under a PostgreSQL
// session-level advisory lock: replicas that start together on an empty
// database wait for the one holding the lock, then find nothing to do, so
// the schema is applied once.
//
// goose rather than golang-migrate: its Provider takes the *sql.DB over
// this pool and the embedded files, keeps no global state, runs each
// migration in a transaction, and ships the advisory-lock locker; the
// migrations stay plain SQL files.
func (s *Store) Migrate(ctx context.Context) error {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	// Poll the lock every second, for up to 2 minutes: longer than any
	// migration here takes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 120))
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(s.logger),
	)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations to %s: %w", s.target, err)
	}
	s.ready.Store(true)
	return nil
}
