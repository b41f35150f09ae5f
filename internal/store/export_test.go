package store

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ListPlans reads, on one of the pool's connections, how often PostgreSQL
// used a generic plan and planned anew for the list query there.
func ListPlans(ctx context.Context, s *Store) (generic, custom int64, err error) {
	err = s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`,
			listMessages).Scan(&generic, &custom)
	})
	return generic, custom, err
}
