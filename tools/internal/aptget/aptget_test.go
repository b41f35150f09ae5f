package aptget

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"scalable-app/tools/internal/command"
)

func TestInstalledPackagesAreLeftAlone(t *testing.T) {
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) { return "install ok installed", nil }}
	var log bytes.Buffer
	if err := Install(context.Background(), command.New(fake, nil), &log, "dpkg", "coreutils"); err != nil {
		t.Fatal(err)
	}
	if log.Len() != 0 || len(fake.Calls()) != 2 {
		t.Fatalf("nothing to install, but it said %q and ran %q", log.String(), fake.Lines())
	}
}

// A failed install is retried once after apt-get update, waiting for the
// dpkg lock and never asking a question.
func TestAFailedInstallIsRetriedOnceAfterUpdate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("Install refuses to install without root")
	}
	installs := 0
	fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
		switch {
		case c.Name == "dpkg-query":
			return "", errors.New("no packages found matching chromium")
		case c.Name == "apt-get" && slices.Contains(c.Args, "install"):
			installs++
			if installs == 1 {
				return "", errors.New("E: Unable to locate package chromium")
			}
		}
		return "", nil
	}}
	if err := Install(context.Background(), command.New(fake, nil), &bytes.Buffer{}, "chromium"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dpkg-query -W -f=${Status} chromium",
		"apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends chromium",
		"apt-get -o DPkg::Lock::Timeout=600 update -q",
		"apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends chromium",
	}
	got := fake.Lines()
	for i := range got {
		got[i] = strings.ReplaceAll(got[i], `"-f=${Status}"`, "-f=${Status}")
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range fake.Calls()[1:] {
		if len(c.Env) != 1 || c.Env[0] != "DEBIAN_FRONTEND=noninteractive" {
			t.Fatalf("%s ran with env %q", c.Line(), c.Env)
		}
	}
}

func TestParseCandidate(t *testing.T) {
	policy := `busybox-static:
  Installed: (none)
  Candidate: 1:1.35.0-4+deb12u1+b1
  Version table:
     1:1.35.0-4+deb12u1+b1 500
`
	if got := parseCandidate(policy); got != "1:1.35.0-4+deb12u1+b1" {
		t.Errorf("parseCandidate = %q", got)
	}
	if got := parseCandidate("foo:\n  Installed: (none)\n  Candidate: (none)\n"); got != "" {
		t.Errorf("parseCandidate of no candidate = %q, want empty", got)
	}
}
