package dbbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"scalable-app/internal/store"
)

// The service's SQL, word for word (internal/store): the ceiling runs the
// same queries, so the gap is the service's own work around them.
const (
	insertSQL = `INSERT INTO messages (text, instance) VALUES ($1, $2) RETURNING id, text, created_at, instance`
	listSQL   = `SELECT id, text, created_at, instance FROM messages WHERE id < $1 ORDER BY id DESC LIMIT $2`
)

type bareMessage struct {
	ID        int64  `json:"id"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"`
	Instance  string `json:"instance"`
}

// ServeBare is the ceiling: net/http and a pgx pool of maxConns, POST and
// GET /api/messages answered with the service's SQL and JSON shapes, and
// nothing else: no validation beyond decoding, no timeouts, no metrics, no
// log. GET / answers 200 so that the benchmark sees it serving.
func ServeBare(port int, dbURL string, maxConns int) error {
	pc, err := store.PoolConfig(dbURL, maxConns) // the service's pool, setting for setting
	if err != nil {
		return fmt.Errorf("bare handler: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return fmt.Errorf("bare handler: pool: %w", err)
	}
	defer pool.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /api/messages", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Text string `json:"text"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var m bareMessage
		var created time.Time
		if err := pool.QueryRow(r.Context(), insertSQL, in.Text, "bare").Scan(&m.ID, &m.Text, &created, &m.Instance); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		m.CreatedAt = created.UTC().Format(time.RFC3339Nano)
		w.Header().Set("Location", "/api/messages/"+strconv.FormatInt(m.ID, 10))
		writeJSON(w, http.StatusCreated, m)
	})
	mux.HandleFunc("GET /api/messages", func(w http.ResponseWriter, r *http.Request) {
		limit := 20
		if v := r.URL.Query().Get("limit"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		rows, err := pool.Query(r.Context(), listSQL, int64(1<<63-1), limit+1)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (bareMessage, error) {
			var m bareMessage
			var created time.Time
			err := row.Scan(&m.ID, &m.Text, &created, &m.Instance)
			m.CreatedAt = created.UTC().Format(time.RFC3339Nano)
			return m, err
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		out := struct {
			Messages []bareMessage `json:"messages"`
			Next     string        `json:"next,omitempty"`
		}{Messages: list}
		if len(list) > limit {
			out.Messages = list[:limit]
			out.Next = fmt.Sprintf("/api/messages?limit=%d&before=%d", limit, list[limit-1].ID)
		}
		writeJSON(w, http.StatusOK, out)
	})
	return (&http.Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Handler: mux}).ListenAndServe()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
