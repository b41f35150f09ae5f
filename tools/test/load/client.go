package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"scalable-app/internal/server"
)

// Greeting is the body the service answers on GET /.
const Greeting = server.Greeting

// InstanceHeader names the pod that served a response.
const InstanceHeader = server.InstanceHeader

// DefaultTimeout bounds one request when none is given.
const DefaultTimeout = 5 * time.Second

// maxBody caps what is read of a body: the service's answers are tiny.
const maxBody = 1 << 20

// Target is where requests go.
type Target struct {
	URL  string // http://host:port/path, e.g. http://127.0.0.1:30080/
	Host string // Host header, e.g. scalable.local (an Ingress rule); empty keeps the URL's
}

// Kind is how a client uses TCP connections.
type Kind int

const (
	// KeepAlive clients keep one connection open across requests, as a
	// browser or a proxy does, and open a new one only after the server
	// answered with Connection: close or closed the idle connection.
	KeepAlive Kind = iota + 1
	// Fresh clients open a new connection for every request (and send
	// Connection: close), so a load balancer picks a backend each time.
	Fresh
)

func (k Kind) String() string {
	switch k {
	case KeepAlive:
		return "keep-alive"
	case Fresh:
		return "fresh-connection"
	}
	return "kind " + strconv.Itoa(int(k))
}

// Reply is one request's answer.
type Reply struct {
	Status   int
	Body     string
	Instance string // the InstanceHeader
	Header   http.Header
	Close    bool // the server ends the connection after this answer
}

// Error is a request that got no whole answer; Phase says how far it got.
type Error struct {
	Phase string // "connect", "send", "await answer" (no byte of it yet), "read answer" (broken mid-answer)
	Err   error
	// Cut is set when the caller's context had ended (or its deadline
	// passed) by the time the request failed: the caller's cut, not the
	// server's failure. errors.Is(err, context.DeadlineExceeded) cannot
	// tell: the net package's own timeouts match it too.
	Cut bool
}

func (e *Error) Error() string { return e.Phase + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Client sends one request at a time to one target over raw TCP, writing
// HTTP/1.1 itself. It never retries: a request whose connection breaks
// returns an *Error, whatever the method.
type Client struct {
	kind    Kind
	addr    string
	host    string // the Host header
	req     []byte
	timeout time.Duration

	conn   net.Conn
	br     *bufio.Reader
	opened int
}

// NewClient returns a client of kind that sends GET to t.
func NewClient(t Target, kind Kind) (*Client, error) {
	return newClient(t, kind, nil, DefaultTimeout)
}

// newClient sends req, or GET of the target when req is nil.
func newClient(t Target, kind Kind, req *Request, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, fmt.Errorf("parse target URL %q: %w", t.URL, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("target URL %q: only http is supported", t.URL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	host := t.Host
	if host == "" {
		host = u.Host
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &Client{kind: kind, addr: addr, host: host, timeout: timeout}
	r := Request{Method: "GET"}
	if req != nil {
		r = *req
	}
	if r.Path == "" {
		r.Path = u.RequestURI()
	}
	c.req = c.render(r)
	return c, nil
}

// Request is one request for Send: any method, path, headers and body.
type Request struct {
	Method string
	Path   string // the request URI, e.g. /api/messages?limit=5
	Header http.Header
	Body   []byte // sent with a Content-Length when not nil
}

// render writes r as HTTP/1.1 bytes, with the client's Host header.
func (c *Client) render(r Request) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: scalable-app-load\r\n", r.Method, r.Path, c.host)
	if c.kind == Fresh {
		b.WriteString("Connection: close\r\n")
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	if r.Body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.Body))
	}
	b.WriteString("\r\n")
	b.Write(r.Body)
	return b.Bytes()
}

// Connections is how many TCP connections the client has opened.
func (c *Client) Connections() int { return c.opened }

// Close closes the client's connection, if one is open.
func (c *Client) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

// Do sends the client's request and reads the whole answer, within the
// client's timeout; ctx ending aborts it.
func (c *Client) Do(ctx context.Context) (Reply, error) { return c.send(ctx, c.req) }

// Send sends r in place of the client's own request, on the same connection
// rules: one attempt, never retried.
func (c *Client) Send(ctx context.Context, r Request) (Reply, error) {
	return c.send(ctx, c.render(r))
}

func (c *Client) send(ctx context.Context, req []byte) (Reply, error) {
	if c.conn != nil && !c.idleOpen() {
		c.Close() // closed cleanly between requests: reconnecting loses nothing
	}
	if c.conn == nil {
		d := net.Dialer{Timeout: c.timeout}
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return Reply{}, failure(ctx, "connect", err)
		}
		c.conn, c.br = conn, bufio.NewReader(conn)
		c.opened++
	}
	conn := c.conn
	// An ended context moves the deadline into the past, which ends any I/O.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		c.Close()
		return Reply{}, failure(ctx, "send", err)
	}
	if _, err := conn.Write(req); err != nil {
		c.Close()
		return Reply{}, failure(ctx, "send", err)
	}
	rep, phase, err := readReply(c.br)
	if err != nil {
		c.Close()
		return Reply{}, failure(ctx, phase, err)
	}
	if c.kind == Fresh || rep.Close {
		c.Close()
	}
	return rep, nil
}

// idleOpen reports whether the idle connection is still open: a peek that
// does not block sees EOF once the server has closed it.
func (c *Client) idleOpen() bool {
	if c.br.Buffered() > 0 {
		return false // bytes nobody asked for: the connection is out of step
	}
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		// EAGAIN: nothing to read and not closed. 0 bytes: the peer closed.
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN)
		return true // never wait: this is a check, not a read
	})
	return err == nil && open
}

func failure(ctx context.Context, phase string, err error) error {
	end := ended(ctx)
	if end != nil {
		err = fmt.Errorf("%w (%v)", end, err)
	}
	return &Error{Phase: phase, Err: err, Cut: end != nil}
}

// ended is ctx.Err(), or DeadlineExceeded once ctx's deadline has passed: a
// dial bounded by that deadline fails with "i/o timeout" a moment before
// ctx.Err() says so, and the request is the caller's own cut, not the
// server's failure.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// readReply parses one HTTP/1.x response. The phase names how far it got
// when it fails.
func readReply(br *bufio.Reader) (Reply, string, error) {
	for {
		line, err := readLine(br)
		if err != nil {
			return Reply{}, "await answer", err
		}
		proto, rest, _ := strings.Cut(line, " ")
		code, cerr := strconv.Atoi(strings.SplitN(rest, " ", 2)[0])
		if !strings.HasPrefix(proto, "HTTP/1.") || cerr != nil {
			return Reply{}, "read answer", fmt.Errorf("malformed status line %.80q", line)
		}
		rep := Reply{Status: code, Close: proto == "HTTP/1.0", Header: http.Header{}}
		length, chunked := -1, false
		for {
			h, err := readLine(br)
			if err != nil {
				return Reply{}, "read answer", unexpected(err)
			}
			if h == "" {
				break
			}
			k, v, _ := strings.Cut(h, ":")
			v = strings.TrimSpace(v)
			rep.Header.Add(k, v)
			switch strings.ToLower(k) {
			case "content-length":
				if length, err = strconv.Atoi(v); err != nil || length < 0 {
					return Reply{}, "read answer", fmt.Errorf("bad Content-Length %q", v)
				}
			case "transfer-encoding":
				chunked = strings.Contains(strings.ToLower(v), "chunked")
			case "connection":
				v = strings.ToLower(v)
				if strings.Contains(v, "close") {
					rep.Close = true
				} else if strings.Contains(v, "keep-alive") {
					rep.Close = false
				}
			case strings.ToLower(InstanceHeader):
				rep.Instance = v
			}
		}
		if code >= 100 && code < 200 {
			continue // an interim answer (100 Continue): the real one follows
		}
		none := code == 204 || code == 304
		body, err := readBody(br, none, chunked, length)
		if err != nil {
			return Reply{}, "read answer", unexpected(err)
		}
		if !chunked && length < 0 && !none {
			rep.Close = true // the body ran to the end of the connection
		}
		rep.Body = string(body)
		return rep, "", nil
	}
}

func readBody(br *bufio.Reader, none, chunked bool, length int) ([]byte, error) {
	switch {
	case none:
		return nil, nil
	case chunked:
		body, err := io.ReadAll(io.LimitReader(httputil.NewChunkedReader(br), maxBody))
		if err != nil {
			return nil, err
		}
		for { // trailers, up to the empty line
			l, err := readLine(br)
			if err != nil || l == "" {
				return body, err
			}
		}
	case length >= 0:
		if length > maxBody {
			return nil, fmt.Errorf("body of %d bytes is over the %d this client reads", length, maxBody)
		}
		body := make([]byte, length)
		_, err := io.ReadFull(br, body)
		return body, err
	default:
		return io.ReadAll(io.LimitReader(br, maxBody))
	}
}

func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		if err == io.EOF && line != "" {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// unexpected turns EOF after the answer began into ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Get sends one GET to t on a fresh connection: for probes between loads.
func Get(ctx context.Context, t Target) (Reply, error) {
	c, err := NewClient(t, Fresh)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	return c.Do(ctx)
}

// Send sends r to t on a fresh connection, never retried.
func Send(ctx context.Context, t Target, r Request) (Reply, error) {
	c, err := NewClient(t, Fresh)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	return c.Send(ctx, r)
}

// errorKind names a failure for counting: its phase and its cause, without
// the addresses and ports that would make every error unique.
func errorKind(err error) string {
	phase := "request"
	var e *Error
	if errors.As(err, &e) {
		phase = e.Phase
	}
	var cause string
	switch {
	case e != nil && e.Cut:
		cause = "aborted (the run's context ended)"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		cause = "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		cause = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		cause = "connection reset"
	case errors.Is(err, syscall.EPIPE):
		cause = "broken pipe"
	case errors.Is(err, io.ErrUnexpectedEOF):
		cause = "connection closed mid-answer"
	case errors.Is(err, io.EOF):
		cause = "connection closed without an answer"
	default:
		for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
			err = u
		}
		cause = err.Error()
	}
	return phase + ": " + cause
}
