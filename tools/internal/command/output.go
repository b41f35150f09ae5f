package command

import (
	"strings"
	"sync"
)

// LastLines is the last n non-empty-trimmed lines of s, for error messages
// and reports that quote a command's or a log's end.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// Tail is an io.Writer that keeps the last Max bytes written to it (all of
// them when Max is 0), safe for concurrent use: a process's stdout and
// stderr can both write to it while another goroutine reads it.
type Tail struct {
	Max int
	mu  sync.Mutex
	buf []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if t.Max > 0 && len(t.buf) > t.Max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.Max:]...)
	}
	return len(p), nil
}

// Bytes is a copy of what is kept.
func (t *Tail) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}

// String is what is kept.
func (t *Tail) String() string { return string(t.Bytes()) }
