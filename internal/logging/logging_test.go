package logging

import (
	"bytes"
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

func TestLinesReachTheOutputWithinTheFlushInterval(t *testing.T) {
	var out lockedBuffer
	logger, closeLog, err := New(&out, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
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
	logger, closeLog, err := New(&out, "text", "debug")
	if err != nil {
		t.Fatal(err)
	}
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
	logger, closeLog, err := New(&out, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("quiet")
	logger.Warn("loud")
	closeLog()
	if strings.Contains(out.String(), "quiet") || !strings.Contains(out.String(), "loud") {
		t.Fatalf("level warn: %q", out.String())
	}
}
