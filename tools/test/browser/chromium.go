// Package browser loads a page in a real browser, Debian's headless Chromium,
// and returns what it rendered: the DOM as text and a screenshot.
package browser

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"time"

	"scalable-app/tools/internal/aptget"
	"scalable-app/tools/internal/command"
)

// Binary is where Debian's chromium package installs the browser.
const Binary = "/usr/bin/chromium"

// Page is what the browser rendered.
type Page struct {
	DOM        string // serialised DOM after load (--dump-dom)
	Screenshot string // path of the PNG screenshot
}

// Ensure makes sure Chromium is at Binary: when it is missing it installs
// Debian's chromium package (as root), with the recommended fonts, which
// the screenshot needs to show text.
func Ensure(ctx context.Context, run *command.Runner, log io.Writer) error {
	if _, err := os.Stat(Binary); err == nil {
		return nil
	}
	if err := aptget.InstallRecommended(ctx, run, log, "chromium"); err != nil {
		return fmt.Errorf("%s not found, and installing Debian's chromium package failed: %w", Binary, err)
	}
	if _, err := os.Stat(Binary); err != nil {
		return fmt.Errorf("apt-get installed chromium, yet %s is missing", Binary)
	}
	return nil
}

// Load opens url in headless Chromium twice, once to dump the DOM and once for
// a screenshot written to shotPath. resolverRules (Chromium's
// --host-resolver-rules, e.g. "MAP scalable.local 127.0.0.1:30080") stands in
// for a hosts-file line, so the browser sends the real Host header.
func Load(ctx context.Context, run *command.Runner, url, resolverRules, shotPath string) (Page, error) {
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
	dom, err := chromium(ctx, run, append(common, "--dump-dom", url)...)
	if err != nil {
		return Page{}, fmt.Errorf("load %s (dump DOM): %w", url, err)
	}
	if _, err := chromium(ctx, run, append(common, "--screenshot="+shotPath, url)...); err != nil {
		return Page{}, fmt.Errorf("load %s (screenshot): %w", url, err)
	}
	return Page{DOM: dom, Screenshot: shotPath}, nil
}

func chromium(ctx context.Context, run *command.Runner, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	out, err := run.Output(ctx, "load a page in headless Chromium", Binary, args...)
	return string(out), err
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
