// Package browser loads a page in a real browser, Debian's headless Chromium,
// and returns what it rendered: the DOM as text and a screenshot.
package browser

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Binary is where Debian's chromium package installs the browser.
const Binary = "/usr/bin/chromium"

// Page is what the browser rendered.
type Page struct {
	DOM        string // serialised DOM after load (--dump-dom)
	Screenshot string // path of the PNG screenshot
}

// Ensure makes sure Chromium is at Binary: when it is missing and the process
// runs as root it installs Debian's chromium package with apt-get (with the
// recommended fonts, which the screenshot needs to show text).
func Ensure(ctx context.Context, logf func(string, ...any)) error {
	if _, err := os.Stat(Binary); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s not found: install Debian's chromium package (apt-get install -y chromium), or run as root to have it installed", Binary)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s not found, and no apt-get to install it: install Chromium at %s", Binary, Binary)
	}
	logf("%s not found: installing Debian's chromium package (apt-get install -y chromium)", Binary)
	out, err := aptGet(ctx, "install", "-y", "chromium")
	if err != nil {
		// The package lists may be missing or stale: refresh them once.
		logf("apt-get install failed (%s); running apt-get update and trying again", tail(out))
		if out, err := aptGet(ctx, "update"); err != nil {
			return fmt.Errorf("%s not found, and apt-get update failed: %w: %s", Binary, err, tail(out))
		}
		if out, err = aptGet(ctx, "install", "-y", "chromium"); err != nil {
			return fmt.Errorf("%s not found, and apt-get install -y chromium failed: %w: %s", Binary, err, tail(out))
		}
	}
	if _, err := os.Stat(Binary); err != nil {
		return fmt.Errorf("apt-get installed chromium, yet %s is missing", Binary)
	}
	logf("installed chromium")
	return nil
}

func aptGet(ctx context.Context, args ...string) (string, error) {
	// Wait for a dpkg lock held by another install rather than fail at once.
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Load opens url in headless Chromium twice, once to dump the DOM and once for
// a screenshot written to shotPath. resolverRules (Chromium's
// --host-resolver-rules, e.g. "MAP scalable.local 127.0.0.1:30080") stands in
// for a hosts-file line, so the browser sends the real Host header.
func Load(ctx context.Context, url, resolverRules, shotPath string) (Page, error) {
	if _, err := os.Stat(Binary); err != nil {
		return Page{}, fmt.Errorf("%s not found: install Debian's chromium package (apt-get install -y chromium)", Binary)
	}
	profile, err := os.MkdirTemp("", "chromium-profile-")
	if err != nil {
		return Page{}, fmt.Errorf("make a browser profile directory: %w", err)
	}
	defer os.RemoveAll(profile)
	if err := os.MkdirAll(filepath.Dir(shotPath), 0o755); err != nil {
		return Page{}, fmt.Errorf("make screenshot directory: %w", err)
	}
	common := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		// The test needs only the page under test: without these Chromium
		// also calls Google's services, which may be unreachable and slow it down.
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile,
		"--host-resolver-rules=" + resolverRules,
		"--window-size=800,600",
	}
	dom, err := chromium(ctx, append(common, "--dump-dom", url)...)
	if err != nil {
		return Page{}, fmt.Errorf("load %s (dump DOM): %w", url, err)
	}
	if _, err := chromium(ctx, append(common, "--screenshot="+shotPath, url)...); err != nil {
		return Page{}, fmt.Errorf("load %s (screenshot): %w", url, err)
	}
	return Page{DOM: dom, Screenshot: shotPath}, nil
}

func chromium(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("chromium: %w: %s", err, tail(stderr.String()))
	}
	return stdout.String(), nil
}

// InkFraction returns the share of the PNG's pixels that are dark: text drawn
// on the page shows up as a small non-zero share, a blank page as zero.
func InkFraction(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open screenshot: %w", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return 0, fmt.Errorf("decode screenshot %s: %w", path, err)
	}
	return ink(img), nil
}

func ink(img image.Image) float64 {
	b := img.Bounds()
	dark, total := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if (r+g+bl)/3 < 0x4000 {
				dark++
			}
			total++
		}
	}
	if total == 0 {
		return 0
	}
	return float64(dark) / float64(total)
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}
