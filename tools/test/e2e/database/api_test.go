//go:build e2e

package database

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"scalable-app/tools/test/load"
)

// message is the API's representation of a guestbook message.
type message struct {
	ID        int64     `json:"id"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
	Instance  string    `json:"instance"`
}

type page struct {
	Messages []message `json:"messages"`
	Next     string    `json:"next"`
}

// send sends one request to tg on a connection of its own: one attempt,
// never retried.
func (st *suite) send(ctx context.Context, tg load.Target, r load.Request) (load.Reply, error) {
	c, err := load.NewClient(tg, load.Fresh)
	if err != nil {
		return load.Reply{}, err
	}
	defer c.Close()
	return c.Send(ctx, r)
}

// postRequest is a POST of text, with an Idempotency-Key when key is set.
func postRequest(text, key string) load.Request {
	body, _ := json.Marshal(map[string]string{"text": text})
	h := http.Header{"Content-Type": {"application/json"}}
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	return load.Request{Method: "POST", Path: "/api/messages", Header: h, Body: body}
}

// decodeCreated checks a 201 and returns the message it created.
func decodeCreated(rep load.Reply) (message, error) {
	var m message
	if rep.Status != http.StatusCreated {
		return m, fmt.Errorf("status %d, want 201: %.200s", rep.Status, rep.Body)
	}
	if err := json.Unmarshal([]byte(rep.Body), &m); err != nil {
		return m, fmt.Errorf("decode the created message %.200q: %w", rep.Body, err)
	}
	if want := fmt.Sprintf("/api/messages/%d", m.ID); rep.Header.Get("Location") != want {
		return m, fmt.Errorf("Location %q, want %q", rep.Header.Get("Location"), want)
	}
	return m, nil
}

// post creates a message through tg.
func (st *suite) post(ctx context.Context, tg load.Target, text string) (message, error) {
	rep, err := st.send(ctx, tg, postRequest(text, ""))
	if err != nil {
		return message{}, fmt.Errorf("POST /api/messages: %w", err)
	}
	return decodeCreated(rep)
}

// all reads every message through tg, following `next` to the end.
func (st *suite) all(ctx context.Context, tg load.Target) ([]message, error) {
	var out []message
	path := "/api/messages?limit=100"
	for path != "" {
		rep, err := st.send(ctx, tg, load.Request{Method: "GET", Path: path})
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		if rep.Status != http.StatusOK {
			return nil, fmt.Errorf("GET %s: status %d: %.200s", path, rep.Status, rep.Body)
		}
		var p page
		if err := json.Unmarshal([]byte(rep.Body), &p); err != nil {
			return nil, fmt.Errorf("GET %s: decode %.200q: %w", path, rep.Body, err)
		}
		out = append(out, p.Messages...)
		path = p.Next
	}
	return out, nil
}
