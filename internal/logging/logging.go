// Package logging builds the service's slog logger.
//
// Log lines go through a buffer that a background goroutine flushes every
// FlushInterval (100 ms), so the request path pays for formatting a line but
// not for a write system call per request.
package logging

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// FlushInterval bounds how long a line may wait in the buffer.
const FlushInterval = 100 * time.Millisecond

// New returns a logger writing format ("json" or "text") at level to w, and
// a function that flushes what is buffered and stops the background flusher.
// Call it before the process exits.
func New(w io.Writer, format, level string) (*slog.Logger, func() error, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("log level %q: %w", level, err)
	}
	bw := NewBufferedWriter(w, FlushInterval)
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch format {
	case "json":
		h = newJSONHandler(bw, opts)
	case "text":
		h = slog.NewTextHandler(bw, opts)
	default:
		bw.Close()
		return nil, nil, fmt.Errorf("log format %q: must be json or text", format)
	}
	return slog.New(h), bw.Close, nil
}

// BufferedWriter is an io.Writer, safe for concurrent use, that flushes to the
// underlying writer periodically, when its buffer fills, and on Close.
type BufferedWriter struct {
	mu       sync.Mutex
	buf      *bufio.Writer
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// NewBufferedWriter starts a writer flushing to w at least every interval.
func NewBufferedWriter(w io.Writer, interval time.Duration) *BufferedWriter {
	b := &BufferedWriter{
		buf:  bufio.NewWriterSize(w, 64<<10),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go b.flushEvery(interval)
	return b
}

// Write buffers p. slog handlers write each record with a single call, so
// records are never interleaved.
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Flush writes out what is buffered.
func (b *BufferedWriter) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Flush()
}

// Close stops the background flusher and flushes. It is safe to call twice.
func (b *BufferedWriter) Close() error {
	b.stopOnce.Do(func() {
		close(b.stop)
		<-b.done
	})
	return b.Flush()
}

func (b *BufferedWriter) flushEvery(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			// A failed write to stdout leaves nowhere to report it; the next
			// flush retries what bufio kept.
			_ = b.Flush()
		}
	}
}
