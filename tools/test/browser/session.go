package browser

import (
	"context"
	"fmt"
	"os"

	"github.com/chromedp/chromedp"
)

// Session starts headless Chromium driven over the DevTools protocol
// (chromedp), for pages a test must use and not only load: type into a form,
// submit it, read what the next page shows. resolverRules is as for Load.
// The returned context carries the browser; cancel ends it.
func Session(ctx context.Context, resolverRules string) (context.Context, context.CancelFunc, error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, nil, fmt.Errorf("%s not found: install Debian's chromium package (apt-get install -y chromium)", Binary)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Binary),
		chromedp.NoSandbox, // root in a container: Chromium's sandbox needs user namespaces it may not get
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("host-resolver-rules", resolverRules),
		chromedp.WindowSize(800, 600),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // starts the browser now, so a failure is reported here
		cancelBrowser()
		cancelAlloc()
		return nil, nil, fmt.Errorf("start %s: %w", Binary, err)
	}
	return bctx, func() { cancelBrowser(); cancelAlloc() }, nil
}
