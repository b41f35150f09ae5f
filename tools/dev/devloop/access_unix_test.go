//go:build unix

package devloop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReadableNamesWhatThePodCannotRead(t *testing.T) {
	if os.Geteuid() == PodUID {
		t.Skip("running as the pod's user")
	}
	dir := sourceTree(t)
	if err := checkReadable(dir, PodUID, PodGID); err != nil {
		t.Fatalf("a tree of mode 0755/0644 (with a private .git) is refused: %v", err)
	}
	private := filepath.Join(dir, "internal", "server")
	secretGo := filepath.Join(dir, "main.go")
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secretGo, 0o600); err != nil {
		t.Fatal(err)
	}
	err := checkReadable(dir, PodUID, PodGID)
	if err == nil {
		t.Fatal("a 0700 package directory and a 0600 Go file are accepted")
	}
	for _, want := range []string{private + " (drwx------", secretGo + " (-rw-------", "chmod -R a+rX " + dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestAllowedUsesTheClassOfTheUser(t *testing.T) {
	for _, tc := range []struct {
		perm           os.FileMode
		owner, group   uint32
		want           bool
		classOfTheUser string
	}{
		{0o700, PodUID, 1, true, "owner"},
		{0o070, PodUID, PodGID, false, "owner (group bits do not apply)"},
		{0o050, 1, PodGID, true, "group"},
		{0o755, 1, 1, true, "others"},
		{0o750, 1, 1, false, "others"},
	} {
		if got := allowed(tc.perm, tc.owner, tc.group, PodUID, PodGID, 0o5); got != tc.want {
			t.Errorf("allowed(%v, owner %d, group %d) = %v, want %v (%s)", tc.perm, tc.owner, tc.group, got, tc.want, tc.classOfTheUser)
		}
	}
}
