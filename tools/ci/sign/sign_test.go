package sign

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scalable-app/tools/internal/command"
)

// A new directory gets a pair and a password kept beside it; the next call
// reuses them and runs nothing; a key brought without its password file
// takes COSIGN_PASSWORD and is never replaced.
func TestEnsureKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		if c.Args[0] != "generate-key-pair" || !strings.HasPrefix(strings.Join(c.Env, " "), "COSIGN_PASSWORD=") {
			return "", errors.New("unexpected command " + c.Line())
		}
		prefix := c.Args[2]
		if err := os.WriteFile(prefix+".key", []byte("private"), 0o600); err != nil {
			return "", err
		}
		return "", os.WriteFile(prefix+".pub", []byte("public"), 0o644)
	}}
	run := command.New(fake, io.Discard)
	k, err := EnsureKeys(context.Background(), run, "cosign", dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Password) != 48 || k.Private != filepath.Join(dir, "cosign.key") {
		t.Fatalf("keys %+v", k)
	}
	if fi, err := os.Stat(filepath.Join(dir, "cosign.password")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", fi, err)
	}
	again, err := EnsureKeys(context.Background(), run, "cosign", dir)
	if err != nil || again != k || len(fake.Calls()) != 1 {
		t.Fatalf("second call: %+v, %v, %d commands; want the same keys and no command", again, err, len(fake.Calls()))
	}

	if err := os.Remove(filepath.Join(dir, "cosign.password")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COSIGN_PASSWORD", "")
	os.Unsetenv("COSIGN_PASSWORD")
	if _, err := EnsureKeys(context.Background(), run, "cosign", dir); err == nil || !strings.Contains(err.Error(), "set COSIGN_PASSWORD") {
		t.Fatalf("a key without its password: %v", err)
	}
	t.Setenv("COSIGN_PASSWORD", "mine")
	own, err := EnsureKeys(context.Background(), run, "cosign", dir)
	if err != nil || own.Password != "mine" || len(fake.Calls()) != 1 {
		t.Fatalf("own key: %+v, %v, %d commands", own, err, len(fake.Calls()))
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cosign.key")); string(b) != "private" {
		t.Fatalf("the key was replaced: %q", b)
	}
}

func TestSignTakesDigestsOnly(t *testing.T) {
	s := Signer{Bin: "cosign", Run: command.New(&command.Fake{}, io.Discard)}
	if err := s.Sign(context.Background(), "localhost:5001/scalable-app:latest"); err == nil {
		t.Fatal("signed a tag")
	}
}
