package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// A closed terminal sends SIGHUP: it must stop the dev loop through its
// context (and so run the cleanup), not kill the process. An uncaught
// SIGHUP or SIGPIPE would end this test binary.
func TestHangupAndBrokenPipeStopThroughTheContext(t *testing.T) {
	ctx, stop := stopContext()
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGPIPE); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("SIGPIPE stopped the dev loop: only a write error should come of it")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGHUP did not end the context")
	}
}
