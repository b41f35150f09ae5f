package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"scalable-app/tools/internal/command"
)

// builder compiles the app into outDir, never into the source tree: the
// binary goes to outDir, intermediate files to the Go build cache and the
// go command's temporary directory.
type builder struct {
	run    *command.Runner
	goCmd  string
	dir    string // module directory, where go build runs
	pkg    string
	flags  []string
	outDir string
	n      int
}

type buildResult struct {
	binary   string
	output   []byte // compiler output, also on success (warnings from cgo, vet-like notes)
	duration time.Duration
	err      error
}

func (b *builder) build(ctx context.Context) buildResult {
	b.n++
	bin := filepath.Join(b.outDir, "app-"+strconv.Itoa(b.n))
	args := []string{"build", "-o", bin}
	// Never let the go command rewrite go.mod or go.sum in the mounted
	// source, whatever GOFLAGS says; a vendor directory is used as is.
	if _, err := os.Stat(filepath.Join(b.dir, "vendor", "modules.txt")); err != nil {
		args = append(args, "-mod=readonly")
	}
	// -trimpath keys the build cache by module path, not by where the
	// source is mounted, so a fresh copy reuses cached packages; the
	// mounted .git may belong to another user, hence no VCS stamping.
	args = append(args, "-trimpath", "-buildvcs=false")
	args = append(args, b.flags...)
	args = append(args, b.pkg)

	start := time.Now()
	// Both streams into one buffer, in the order the go command wrote them.
	out := &command.Tail{}
	_, err := b.run.Exec(ctx, command.Cmd{
		What:   "build the app",
		Name:   b.goCmd,
		Args:   args,
		Dir:    b.dir,
		Stdout: out,
		Stderr: out,
	})
	res := buildResult{binary: bin, duration: time.Since(start), err: err}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		// The go command itself could not run: say so on the page.
		fmt.Fprintf(out, "%v\n", err)
	}
	res.output = out.Bytes()
	if err != nil {
		os.Remove(bin)
	}
	return res
}

// sameFile reports whether two binaries are byte-for-byte equal. Go builds
// are reproducible, so an edit that does not change the program (a comment,
// a test, a README) builds the same bytes and needs no restart. Different
// binaries differ in the build ID near the start, so this returns early.
func sameFile(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	sa, errA := fa.Stat()
	sb, errB := fb.Stat()
	if errA != nil || errB != nil || sa.Size() != sb.Size() {
		return false
	}
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, errA := io.ReadFull(fa, bufA)
		nb, errB := io.ReadFull(fb, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false
		}
		if errA != nil || errB != nil {
			return errors.Is(errA, io.ErrUnexpectedEOF) || errors.Is(errA, io.EOF)
		}
	}
}
