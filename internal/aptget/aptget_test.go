package aptget

import (
	"bytes"
	"context"
	"testing"
)

func TestInstalledPackagesAreLeftAlone(t *testing.T) {
	var log bytes.Buffer
	// dpkg and coreutils are on every Debian system.
	if err := Install(context.Background(), &log, "dpkg", "coreutils"); err != nil {
		t.Fatal(err)
	}
	if log.Len() != 0 {
		t.Fatalf("nothing to install, but it said %q", log.String())
	}
}
