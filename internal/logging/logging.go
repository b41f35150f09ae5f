// Package logging builds the service's slog logger and the writer behind it.
//
// Log lines go through a Writer: a bounded buffer that a background
// goroutine writes out every FlushInterval (100 ms), so the request path
// pays for formatting a line but not for a write system call, and never
// waits for stdout. When stdout falls behind (a backed-up log collector)
// and the buffer is full, lines are dropped and counted instead.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// FlushInterval bounds how long a line may wait in the buffer.
	FlushInterval = 100 * time.Millisecond
	// BufferSize bounds the bytes waiting to be written. A quarter full
	// wakes the writer early: at 25 000 requests a second (4 MB/s of
	// access lines) that is a write every 8 ms, far within what a pipe to
	// the container runtime takes.
	BufferSize = 128 << 10
	// CloseTimeout bounds how long Close waits for stdout: an exit must
	// not hang on a log reader that went away.
	CloseTimeout = 2 * time.Second
)

// New returns a logger writing format ("json" or "text", any case) at
// level ("debug", "info", "warn" or "error", any case) to w. w should not
// block: pass a Writer.
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: must be debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(newJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: must be json or text", format)
}

// Writer is an io.Writer, safe for concurrent use, whose Write never waits
// for the underlying writer: it copies into a bounded buffer that a
// background goroutine writes out at least every FlushInterval, and drops
// what does not fit. slog handlers write each record with a single call, so
// records are dropped whole and never interleaved.
type Writer struct {
	out   io.Writer
	limit int

	mu      sync.Mutex
	pending []byte

	dropped  atomic.Uint64
	kick     chan struct{} // the buffer is filling: write out before the tick
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// NewWriter starts a Writer to out, buffering at most limit bytes.
func NewWriter(out io.Writer, limit int) *Writer {
	w := &Writer{
		out:   out,
		limit: limit,
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go w.writeEvery(FlushInterval)
	return w
}

// Write buffers p, or drops it when the buffer is full. It never fails:
// a log line must not fail a request.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if len(w.pending)+len(p) > w.limit {
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	w.pending = append(w.pending, p...)
	early := len(w.pending) >= w.limit/4
	w.mu.Unlock()
	if early {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Dropped is the number of writes (log lines) dropped because the buffer
// was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// ErrBlocked is returned by Close when the underlying writer did not take
// the buffered lines within CloseTimeout.
var ErrBlocked = errors.New("log output blocked: buffered lines not written")

// Close writes out what is buffered and stops the background goroutine,
// waiting at most CloseTimeout. It is safe to call twice and from several
// goroutines.
func (w *Writer) Close() error {
	w.stopOnce.Do(func() { close(w.stop) })
	select {
	case <-w.done:
		return nil
	case <-time.After(CloseTimeout):
		return ErrBlocked
	}
}

func (w *Writer) writeEvery(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	var spare []byte
	for {
		select {
		case <-w.stop:
			w.writeOut(&spare)
			return
		case <-t.C:
		case <-w.kick:
		}
		w.writeOut(&spare)
	}
}

// writeOut swaps the buffers, so writers fill one while the other is
// written out. A failed write to stdout leaves nowhere to report it.
func (w *Writer) writeOut(spare *[]byte) {
	w.mu.Lock()
	buf := w.pending
	w.pending = (*spare)[:0]
	w.mu.Unlock()
	if len(buf) > 0 {
		_, _ = w.out.Write(buf)
	}
	*spare = buf[:0]
}
