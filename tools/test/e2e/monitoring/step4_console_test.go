//go:build e2e

package monitoring

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"scalable-app/tools/test/browser"
	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

// Chromium opens Prometheus' console page of the service under load, as a
// person would through `kubectl port-forward`: the figures the server
// evaluated and the six graphs the page draws from the range API. The
// screenshot goes to testdata/artifacts (the README's is one of them).
func (st *suite) testStep4ConsoleInChromium(t *testing.T) {
	ctx := stepContext(t, 6*time.Minute)
	if err := browser.Ensure(ctx, st.run, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if _, err := st.target.Kubectl.WaitReadyPods(ctx, namespace, appSelector, 2, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	tr := startTraffic(t, ctx, st.ingress)
	defer tr.stop(t)
	time.Sleep(75 * time.Second) // five scrapes of the load: the graphs have lines

	base := st.portForward(t, ctx)
	bctx, stop, err := browser.Session(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	go func() { <-ctx.Done(); stop() }()

	url := base + "/consoles/scalable-app.html?namespace=" + namespace
	err = chromedp.Do(bctx,
		chromedp.EmulateViewport(1200, 900),
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`)),
	)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	stats, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".stat")].map(s => s.innerText.replace(/\s+/g, " "))`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("console figures: %v", stats)
	if len(stats) != 6 || !strings.Contains(strings.Join(stats, "|"), "2 / 2 pods answering scrapes") {
		t.Errorf("the console's figures %v: want six, with both pods answering", stats)
	}
	legends, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".chart")].map(c => c.querySelector("h2").innerText + ": " + c.querySelector(".legend").innerText)`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("console graphs: %v", legends)
	if len(legends) != 6 {
		t.Errorf("%d graphs drawn, want 6", len(legends))
	}
	for _, l := range legends {
		if strings.HasSuffix(l, ": no data") {
			t.Errorf("graph without data under load: %s", l)
		}
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(st.artifacts, "prometheus-console.png")
	if err := os.MkdirAll(st.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", strings.TrimPrefix(path, st.root+"/"))
}

// portForward forwards a free local port to the Prometheus Service, as the
// README tells a person to, for the test's life; it returns the base URL.
func (st *suite) portForward(t *testing.T, ctx context.Context) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	c := st.target.Kubectl.Command("port-forward", "-n", monitoringNS, "svc/prometheus", port+":9090")
	c.What = "port-forward to Prometheus"
	pf, err := st.run.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pf.Signal(os.Interrupt); pf.Wait() })
	base := "http://127.0.0.1:" + port
	err = kube.Poll(ctx, 30*time.Second, 500*time.Millisecond, "the port-forward to answer", func(ctx context.Context) (bool, string, error) {
		rep, err := load.Get(ctx, load.Target{URL: base + "/-/ready"})
		if err != nil {
			return false, err.Error(), nil
		}
		return rep.Status == 200, fmt.Sprintf("status %d", rep.Status), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return base
}
