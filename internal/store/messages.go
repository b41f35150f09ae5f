package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// Message is one guestbook entry.
type Message struct {
	ID        int64
	Text      string
	CreatedAt time.Time
	Instance  string // the pod that wrote it
}

// Response is the answer to a POST, kept with its idempotency key so that a
// retry gets the same one.
type Response struct {
	Status   int
	Location string
	Body     []byte
}

const (
	insertMessage = `INSERT INTO messages (text, instance) VALUES ($1, $2) RETURNING id, text, created_at, instance`
	listMessages  = `SELECT id, text, created_at, instance FROM messages WHERE id < $1 ORDER BY id DESC LIMIT $2`
)

// CreateMessage stores a message.
func (s *Store) CreateMessage(ctx context.Context, text, instance string) (Message, error) {
	var m Message
	err := s.do(ctx, "create_message", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, insertMessage, text, instance).Scan(&m.ID, &m.Text, &m.CreatedAt, &m.Instance)
	})
	return m, err
}

// CreateMessageOnce stores a message under an idempotency key, with the
// answer respond makes of it, in one transaction: the key is claimed first,
// so a concurrent request with the same key waits on it and then finds the
// answer. A key seen before returns its stored answer and replayed true if
// fingerprint matches, ErrKeyReused if not.
func (s *Store) CreateMessageOnce(ctx context.Context, key string, fingerprint []byte, text, instance string,
	respond func(Message) (Response, error)) (resp Response, replayed bool, err error) {
	err = s.do(ctx, "create_message_once", func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			claimed, err := tx.Exec(ctx,
				`INSERT INTO idempotency_keys (key, fingerprint) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
				key, fingerprint)
			if err != nil {
				return fmt.Errorf("claim idempotency key: %w", err)
			}
			if claimed.RowsAffected() == 0 {
				var stored []byte
				err := tx.QueryRow(ctx,
					`SELECT fingerprint, status, location, body FROM idempotency_keys WHERE key = $1`, key,
				).Scan(&stored, &resp.Status, &resp.Location, &resp.Body)
				if err != nil {
					return fmt.Errorf("read idempotency key: %w", err)
				}
				if string(stored) != string(fingerprint) {
					return ErrKeyReused
				}
				replayed = true
				return nil
			}
			var m Message
			if err := tx.QueryRow(ctx, insertMessage, text, instance).Scan(&m.ID, &m.Text, &m.CreatedAt, &m.Instance); err != nil {
				return fmt.Errorf("insert message: %w", err)
			}
			if resp, err = respond(m); err != nil {
				return err
			}
			_, err = tx.Exec(ctx,
				`UPDATE idempotency_keys SET status = $2, location = $3, body = $4 WHERE key = $1`,
				key, resp.Status, resp.Location, resp.Body)
			if err != nil {
				return fmt.Errorf("store the answer of idempotency key: %w", err)
			}
			return nil
		})
	})
	return resp, replayed, err
}

// ListMessages returns up to limit messages with an id below before (0:
// from the newest), newest first, and whether there are more after them.
func (s *Store) ListMessages(ctx context.Context, before int64, limit int) ([]Message, bool, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	var list []Message
	err := s.do(ctx, "list_messages", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, listMessages, before, limit+1)
		if err != nil {
			return err
		}
		list, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Message, error) {
			var m Message
			return m, row.Scan(&m.ID, &m.Text, &m.CreatedAt, &m.Instance)
		})
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if len(list) > limit {
		return list[:limit], true, nil
	}
	return list, false, nil
}

// GetMessage returns the message with that id, or ErrNotFound.
func (s *Store) GetMessage(ctx context.Context, id int64) (Message, error) {
	var m Message
	err := s.do(ctx, "get_message", func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, `SELECT id, text, created_at, instance FROM messages WHERE id = $1`, id).
			Scan(&m.ID, &m.Text, &m.CreatedAt, &m.Instance)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	return m, err
}

// DeleteMessage deletes the message with that id, or returns ErrNotFound.
func (s *Store) DeleteMessage(ctx context.Context, id int64) error {
	return s.do(ctx, "delete_message", func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM messages WHERE id = $1`, id)
		if err == nil && tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return err
	})
}

// SweepIdempotencyKeys deletes the keys older than KeyTTL and returns how
// many it deleted.
func (s *Store) SweepIdempotencyKeys(ctx context.Context) (int64, error) {
	var n int64
	err := s.do(ctx, "sweep_idempotency_keys", func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)`,
			KeyTTL.Seconds())
		n = tag.RowsAffected()
		return err
	})
	return n, err
}
