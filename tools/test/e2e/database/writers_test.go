//go:build e2e

package database

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"scalable-app/tools/test/load"
)

// outcome is what became of one message a writer tried to create.
type outcome struct {
	text                    string
	key                     string        // Idempotency-Key, when the writer sends one
	at                      time.Time     // when its last attempt was answered (or failed)
	took                    time.Duration // the last attempt's latency
	status                  int           // the last answer's status; 0: no answer
	err                     error         // the last attempt got no answer
	attempts                int
	replayed                bool // the answer was a replay of an earlier attempt's
	retryAfter, contentType string
	id                      int64 // the created message, on 201
}

// writers are keep-alive clients through the Ingress, each POSTing new
// messages one after another until stopped. With retry set, a message whose
// answer is lost (no answer, 502, 503, 504) is sent again with the same
// Idempotency-Key until it is created or retryFor has passed; without it,
// each message is sent once.
type writers struct {
	st       *suite
	clients  int
	pause    time.Duration // between two messages of a client
	retry    bool
	retryFor time.Duration
	prefix   string

	mu       sync.Mutex
	outcomes []outcome
	stop     chan struct{}
	done     sync.WaitGroup
}

func (w *writers) describe() string {
	s := fmt.Sprintf("%d keep-alive clients (raw HTTP/1.1) through the Ingress, one POST every %s each, ", w.clients, w.pause)
	if w.retry {
		return s + fmt.Sprintf("retrying a lost answer with the same Idempotency-Key for up to %s", w.retryFor)
	}
	return s + "never retrying"
}

func (w *writers) start(ctx context.Context) error {
	w.stop = make(chan struct{})
	for i := range w.clients {
		c, err := load.NewClient(w.st.ingress, load.KeepAlive)
		if err != nil {
			return err
		}
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			defer c.Close()
			for n := 0; ; n++ {
				select {
				case <-w.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				o := w.write(ctx, c, fmt.Sprintf("%s c%d n%d", w.prefix, i, n))
				w.mu.Lock()
				w.outcomes = append(w.outcomes, o)
				w.mu.Unlock()
				time.Sleep(w.pause)
			}
		}()
	}
	return nil
}

func (w *writers) write(ctx context.Context, c *load.Client, text string) outcome {
	o := outcome{text: text}
	if w.retry {
		o.key = text
	}
	deadline := time.Now().Add(w.retryFor)
	for {
		o.attempts++
		begin := time.Now()
		rep, err := c.Send(ctx, postRequest(text, o.key))
		o.at, o.took, o.err, o.status = time.Now(), time.Since(begin), err, rep.Status
		if err == nil {
			o.retryAfter = rep.Header.Get("Retry-After")
			o.contentType = rep.Header.Get("Content-Type")
			o.replayed = rep.Header.Get("Idempotent-Replayed") == "true"
			if m, derr := decodeCreated(rep); derr == nil {
				o.id = m.ID
			} else if rep.Status == http.StatusCreated {
				o.err = derr
			}
		}
		lost := err != nil || rep.Status == http.StatusBadGateway || rep.Status == http.StatusServiceUnavailable || rep.Status == http.StatusGatewayTimeout
		if !w.retry || !lost || time.Now().After(deadline) || ctx.Err() != nil {
			return o
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// finish stops the writers and returns every outcome, in the order answered.
func (w *writers) finish() []outcome {
	close(w.stop)
	w.done.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.outcomes
}

// since returns the outcomes answered at or after t.
func (w *writers) since(t time.Time) []outcome {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []outcome
	for _, o := range w.outcomes {
		if !o.at.Before(t) {
			out = append(out, o)
		}
	}
	return out
}
