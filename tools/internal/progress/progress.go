// Package progress prints the harness's steps with the time elapsed since
// the command started, and keeps printing while a long step runs.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Printer writes progress lines such as "[  12.3s] start kubelet".
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	// Heartbeat is how often a running step reports that it is still going.
	Heartbeat time.Duration
}

// New starts the clock.
func New(w io.Writer) *Printer {
	return &Printer{w: w, start: time.Now(), Heartbeat: 30 * time.Second}
}

// Elapsed is the time since New.
func (p *Printer) Elapsed() time.Duration { return time.Since(p.start) }

// Printf prints one line with the elapsed time.
func (p *Printer) Printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, a...))
}

// Step runs fn, printing its name first, a heartbeat while it runs, and how
// long it took when done. Its error is returned unchanged.
func (p *Printer) Step(name string, fn func() error) error {
	p.Printf("%s ...", name)
	began := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	if p.Heartbeat > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(p.Heartbeat)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					p.Printf("  ... still on %s (%s)", name, time.Since(began).Round(time.Second))
				}
			}
		}()
	}
	err := fn()
	close(done)
	wg.Wait()
	took := time.Since(began).Round(100 * time.Millisecond)
	if err != nil {
		p.Printf("%s: FAILED after %s", name, took)
		return err
	}
	p.Printf("%s: done in %s", name, took)
	return nil
}
