package logging

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newLogger is New over a Writer to out; closeLog closes the Writer.
func newLogger(t *testing.T, out io.Writer, format, level string) (*slog.Logger, func() error) {
	t.Helper()
	w := NewWriter(out, BufferSize)
	l, err := New(w, format, level)
	if err != nil {
		t.Fatal(err)
	}
	return l, w.Close
}

func TestLinesReachTheOutputWithinTheFlushInterval(t *testing.T) {
	var out lockedBuffer
	logger, closeLog := newLogger(t, &out, "json", "info")
	defer closeLog()
	logger.Info("hello", "n", 1)
	deadline := time.Now().Add(10 * FlushInterval)
	for !strings.Contains(out.String(), `"msg":"hello","n":1`) {
		if time.Now().After(deadline) {
			t.Fatalf("line not flushed after %s: %q", 10*FlushInterval, out.String())
		}
		time.Sleep(FlushInterval / 10)
	}
}

func TestCloseFlushesEverything(t *testing.T) {
	var out lockedBuffer
	// A buffer the 8000 lines fit in: this is about Close, not about drops.
	w := NewWriter(&out, 1<<20)
	logger, err := New(w, "text", "debug")
	if err != nil {
		t.Fatal(err)
	}
	closeLog := w.Close
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				logger.Debug("line")
			}
		}()
	}
	wg.Wait()
	if err := closeLog(); err != nil {
		t.Fatal(err)
	}
	if err := closeLog(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 8000 {
		t.Fatalf("%d lines after close, want 8000", len(lines))
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, "level=DEBUG msg=line") {
			t.Fatalf("torn or interleaved line %q", l)
		}
	}
}

func TestLevelFilters(t *testing.T) {
	var out lockedBuffer
	logger, closeLog := newLogger(t, &out, "json", "warn")
	logger.Info("quiet")
	logger.Warn("loud")
	closeLog()
	if strings.Contains(out.String(), "quiet") || !strings.Contains(out.String(), "loud") {
		t.Fatalf("level warn: %q", out.String())
	}
}

func TestLevelAndFormatAnyCase(t *testing.T) {
	var out lockedBuffer
	logger, closeLog := newLogger(t, &out, "JSON", "DEBUG")
	logger.Debug("seen")
	closeLog()
	if !strings.Contains(out.String(), `"level":"DEBUG","msg":"seen"`) {
		t.Fatalf("LOG_LEVEL=DEBUG, LOG_FORMAT=JSON: %q", out.String())
	}
}

// blockedWriter never returns from Write until released: stdout that
// nobody reads.
type blockedWriter struct{ release chan struct{} }

func (b blockedWriter) Write(p []byte) (int, error) {
	<-b.release
	return len(p), nil
}

// TestWriteNeverBlocks: with the output stuck, writes return at once,
// what does not fit is dropped and counted, and Close gives up after
// CloseTimeout instead of hanging the exit.
func TestWriteNeverBlocks(t *testing.T) {
	out := blockedWriter{release: make(chan struct{})}
	defer close(out.release)
	w := NewWriter(out, 4<<10)
	line := []byte(strings.Repeat("x", 99) + "\n")
	start := time.Now()
	for i := 0; i < 10_000; i++ {
		w.Write(line)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("10 000 writes to a stuck output took %s", took)
	}
	// At most two buffers' worth is held (one being written, one filling).
	if d := w.Dropped(); d < 10_000-2*(4<<10)/100 {
		t.Fatalf("dropped %d of 10 000 lines, want all but what two 4 KiB buffers hold", d)
	}
	start = time.Now()
	if err := w.Close(); err != ErrBlocked {
		t.Fatalf("Close on a stuck output = %v, want ErrBlocked", err)
	}
	if took := time.Since(start); took > CloseTimeout+time.Second {
		t.Fatalf("Close took %s", took)
	}
}
