package reload

import (
	"context"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// failure is what the error page shows: why there is no app to serve.
type failure struct {
	Title   string // "Build failed", "App exited at start-up"
	Detail  string // one line: exit status, changed files
	Output  string // compiler or crash output
	Changed []string
	At      time.Time
}

func (f failure) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hotreload: %s\n%s\n", f.Title, f.Detail)
	if len(f.Changed) > 0 {
		fmt.Fprintf(&b, "changed: %s\n", strings.Join(f.Changed, ", "))
	}
	b.WriteString("\n")
	b.WriteString(f.Output)
	if !strings.HasSuffix(f.Output, "\n") {
		b.WriteString("\n")
	}
	b.WriteString("\nSave a fix: the next good build replaces this page.\n")
	return b.String()
}

// The page checks every second whether the app is back and then reloads
// itself, so the browser shows the fixed app without a manual refresh.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>hotreload: {{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{color:#b00020;font-size:1.4em}
pre{background:#fff4f4;border:1px solid #e0b4b4;padding:1em;overflow:auto;white-space:pre-wrap}
.meta{color:#555}
</style></head><body>
<h1>{{.Title}}</h1>
<p class="meta">{{.Detail}}{{if .Changed}} &middot; changed: {{range $i, $c := .Changed}}{{if $i}}, {{end}}{{$c}}{{end}}{{end}} &middot; {{.At.Format "15:04:05"}}</p>
<pre>{{.Output}}</pre>
<p class="meta">Save a fix: the next good build replaces this page.</p>
<script>
setInterval(function(){fetch(location.href,{method:"HEAD",cache:"no-store"}).then(function(r){if(r.status!==500)location.reload()}).catch(function(){})},1000);
</script>
</body></html>
`))

// ServeHTTP answers every request with 500 and the failure: HTML for a
// browser, plain text for curl and other clients.
func (f failure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_ = pageTmpl.Execute(w, f)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(f.text()))
}

// errorServer serves a failure on its own duplicate of the shared socket, so
// that stopping it closes the duplicate only and the socket stays open.
type errorServer struct {
	srv  *http.Server
	done chan struct{}
}

func serveFailure(sock *os.File, f failure) (*errorServer, error) {
	ln, err := dupListener(sock)
	if err != nil {
		return nil, err
	}
	s := &errorServer{
		srv:  &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan struct{}),
	}
	// One request per connection: when the app comes back, no client holds
	// a keep-alive connection to this page.
	s.srv.SetKeepAlivesEnabled(false)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// stop stops accepting at once and lets answers in progress finish.
func (s *errorServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}

// dupListener returns a listener on a new descriptor of sock.
func dupListener(sock *os.File) (net.Listener, error) {
	f, err := dupFile(sock)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listener from socket: %w", err)
	}
	return ln, nil
}

// dupFile duplicates the descriptor behind a file or listener without
// touching its blocking mode: the file status flags are shared by every
// process holding the socket, so switching them to blocking (as the Fd
// method of a file obtained from a net.Listener does) would stall the
// running app's accept loop.
func dupFile(src syscall.Conn) (*os.File, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("socket descriptor: %w", err)
	}
	var nfd int
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		nfd, dupErr = dupCloexec(int(fd))
	}); err != nil {
		return nil, fmt.Errorf("socket descriptor: %w", err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("dup socket: %w", dupErr)
	}
	// From a non-blocking descriptor os.NewFile makes a file whose Fd
	// method leaves the mode alone.
	return os.NewFile(uintptr(nfd), "hotreload-socket"), nil
}

func dupCloexec(fd int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	nfd, err := syscall.Dup(fd)
	if err != nil {
		return -1, err
	}
	syscall.CloseOnExec(nfd)
	return nfd, nil
}
