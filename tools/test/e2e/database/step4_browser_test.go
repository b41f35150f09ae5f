//go:build e2e

package database

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"scalable-app/tools/test/browser"
	"scalable-app/tools/test/kube"
)

// Chromium opens /guestbook through the Ingress, as a person would, signs it
// with the form, and sees the message with the pod that wrote it; a message
// holding a <script> renders as text. Screenshots go to testdata/artifacts.
func (st *suite) testStep4GuestbookInChromium(t *testing.T) {
	ctx := stepContext(t, 5*time.Minute)
	if err := browser.Ensure(ctx, st.run, os.Stderr); err != nil {
		t.Fatal(err)
	}
	pods, err := st.target.Kubectl.WaitReadyPods(ctx, namespace, appSelector, 2, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// No timeout on the browser's own context: it would end the browser.
	bctx, stop, err := browser.Session(context.Background(), "MAP "+host+" "+st.target.IngressAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	go func() { <-ctx.Done(); stop() }()

	url := "http://" + host + "/guestbook"
	if err := chromedp.Do(bctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("form"))); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	st.screenshot(t, bctx, "guestbook-before.png")

	plain := st.runID + " signed in Chromium"
	script := `<script>document.title="pwned"</script><b>bold?</b> ` + st.runID
	for i, text := range []string{plain, script} {
		sign := chromedp.Search(`//button[normalize-space()="Sign the guestbook"]`)
		if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.CSS(`[name="text"]`), text), chromedp.Click(sign)); err != nil {
			t.Fatalf("fill in and submit the form: %v", err)
		}
		var shown []entry
		err := kube.Poll(ctx, 30*time.Second, 200*time.Millisecond, "the page to show the new message", func(context.Context) (bool, string, error) {
			shown, err = entries(bctx)
			if err != nil {
				return false, err.Error(), nil
			}
			return slices.ContainsFunc(shown, func(e entry) bool { return e.Text == text }), fmt.Sprintf("%d messages shown", len(shown)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		e := shown[slices.IndexFunc(shown, func(e entry) bool { return e.Text == text })]
		if !slices.Contains(kube.Names(pods), e.Instance) {
			t.Errorf("message %q shows instance %q, want one of the pods %v", text, e.Instance, kube.Names(pods))
		}
		st.screenshot(t, bctx, fmt.Sprintf("guestbook-after-%d.png", i+1))
	}
	// The script's text is on the page as text: no element of it was made.
	title, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.title`))
	if err != nil {
		t.Fatal(err)
	}
	injected, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll(".message script, .message b").length`))
	if err != nil {
		t.Fatal(err)
	}
	if title == "pwned" || injected != 0 {
		t.Errorf("the <script> message ran or made elements: title %q, %d script or b elements in messages", title, injected)
	}
	t.Logf("signed the guestbook twice through the form at %s; the <script> message shows as text (title %q)", url, title)
}

// entry is one message as the page shows it.
type entry struct {
	Text     string `json:"text"`
	Instance string `json:"instance"`
}

func entries(bctx context.Context) ([]entry, error) {
	return chromedp.Run(bctx, chromedp.Evaluate[[]entry](`[...document.querySelectorAll(".message")].map(m => ({
		text: (m.querySelector(".text") || {}).textContent || "",
		instance: ((m.querySelector("code.instance") || {}).textContent || "").trim(),
	}))`))
}

func (st *suite) screenshot(t *testing.T, bctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(st.artifacts, name)
	if err := os.MkdirAll(st.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", strings.TrimPrefix(path, st.root+"/"))
}
