package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends raw bytes on a new connection and returns the status line
// of the answer.
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to %q: %v", raw[:min(len(raw), 40)], err)
	}
	return strings.TrimSpace(line)
}

func TestOversizedHeadersGet431(t *testing.T) {
	s := startServer(t, nil, "--max-header-bytes", "8192")
	raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n"
	if got := rawRequest(t, s.addr, raw); !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Fatalf("oversized headers: %q, want 431", got)
	}
	if status, _, _ := get(t, s.base+"/"); status != 200 {
		t.Fatalf("GET / after an oversized request = %d", status)
	}
}

func TestMalformedRequestGets400(t *testing.T) {
	s := startServer(t, nil)
	for _, raw := range []string{
		"GARBAGE\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n", // HTTP/1.1 requires Host
	} {
		if got := rawRequest(t, s.addr, raw); !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Errorf("%q: %q, want 400", raw, got)
		}
	}
}

// TestSlowHeadersAreCutOff: a client trickling its headers is disconnected
// after the read-header timeout, and other clients are served meanwhile.
func TestSlowHeadersAreCutOff(t *testing.T) {
	s := startServer(t, nil, "--read-header-timeout", "500ms")
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	cut := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		io.WriteString(conn, "GET / HTTP/1.1\r\n")
		for i := 0; i < 100; i++ {
			if _, err := io.WriteString(conn, "X-Slow: 1\r\n"); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		io.ReadAll(conn) // returns once the server closes the connection
		cut <- time.Since(start)
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < 20; i++ {
		resp, err := client.Get(s.base + "/")
		if err != nil {
			t.Fatalf("another client failed while one trickled headers: %v", err)
		}
		resp.Body.Close()
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case d := <-cut:
		if d > 5*time.Second {
			t.Fatalf("trickling client kept its connection for %s", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("trickling client was never cut off")
	}
}

// TestHeadSendsNoBody: HEAD / answers the headers of GET / and no body. A
// body on the wire would be read as the start of the next response on the
// same connection.
func TestHeadSendsNoBody(t *testing.T) {
	s := startServer(t, nil)
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	head, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || head.StatusCode != 200 || head.ContentLength != 21 {
		t.Fatalf("HEAD / = %v, %v; want 200 with Content-Length 21", head, err)
	}
	get, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response after HEAD unreadable (HEAD sent a body?): %v", err)
	}
	body, _ := io.ReadAll(get.Body)
	if get.StatusCode != 200 || string(body) != "Hello from Kubernetes" {
		t.Fatalf("GET after HEAD = %d %q", get.StatusCode, body)
	}
}
