package server

import (
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Conns tracks the server's connections. Its listener caps how many are
// open: at the cap it closes the connection that has waited longest without
// a request in progress (idle keep-alive, or accepted and not yet read), as
// nginx does, so a flood of idle connections neither exhausts memory nor
// locks out new clients such as the kubelet's probes. Install ConnState as
// the http.Server's ConnState hook.
//
// The request path pays one mutex per state change and no allocation: the
// bookkeeping lives in the connection's wrapper.
type Conns struct {
	max int

	mu sync.Mutex
	// waiting lists the connections with no request in progress, the
	// longest waiting first: the ones the cap closes.
	head, tail *trackedConn
	open       int
	byState    [3]int // StateNew, StateActive, StateIdle

	accepted, evicted, refused, timedOut, closed atomic.Uint64
}

// NewConns returns a tracker capping open connections at max, with its
// metrics registered in reg.
func NewConns(max int, reg prometheus.Registerer) *Conns {
	c := &Conns{max: max}
	for _, s := range []http.ConnState{http.StateNew, http.StateActive, http.StateIdle} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "http_connections",
			Help:        "Open connections of the service port by state: new (not read yet), active (request in progress), idle (keep-alive).",
			ConstLabels: prometheus.Labels{"state": s.String()},
		}, func() float64 { return float64(c.count(s)) }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "http_connections_accepted_total",
		Help: "Connections accepted on the service port.",
	}, func() float64 { return float64(c.accepted.Load()) }))
	for reason, n := range map[string]*atomic.Uint64{
		"cap":     &c.evicted,  // closed to admit a new one at --max-conns
		"refused": &c.refused,  // new one closed at once: at the cap and none waiting
		"timeout": &c.timedOut, // a read or write deadline: slow headers, idle timeout, slow reader
		"other":   &c.closed,   // by the client, or by the server after a response
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "http_connections_closed_total",
			Help:        "Connections of the service port closed, by reason: cap (oldest waiting one closed at --max-conns), refused (new one closed at the cap), timeout, other.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(n.Load()) }))
	}
	return c
}

// Max is the cap on open connections.
func (c *Conns) Max() int { return c.max }

// Listener wraps ln so that every connection it accepts is tracked.
func (c *Conns) Listener(ln net.Listener) net.Listener { return &capListener{Listener: ln, conns: c} }

// Open is the number of connections not closed yet.
func (c *Conns) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

func (c *Conns) count(s http.ConnState) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byState[s]
}

// CloseIdle closes the keep-alive connections waiting for a request, and
// leaves alone those accepted but not read yet: their request is on its way.
func (c *Conns) CloseIdle() {
	var idle []*trackedConn
	c.mu.Lock()
	for tc := c.head; tc != nil; tc = tc.next {
		if tc.state == http.StateIdle {
			idle = append(idle, tc)
		}
	}
	c.mu.Unlock()
	for _, tc := range idle {
		tc.Conn.Close() // net/http then reports StateClosed
	}
}

// admit counts a new connection, closing the longest waiting one at the
// cap; it reports false when all are busy and tc must be refused.
func (c *Conns) admit(tc *trackedConn) bool {
	var victim *trackedConn
	c.mu.Lock()
	if c.open >= c.max {
		victim = c.head
		if victim == nil {
			c.mu.Unlock()
			c.refused.Add(1)
			return false
		}
		c.forget(victim)
	}
	tc.state = http.StateNew
	c.byState[http.StateNew]++
	c.open++
	c.push(tc)
	c.mu.Unlock()
	c.accepted.Add(1)
	if victim != nil {
		c.evicted.Add(1)
		victim.Conn.Close()
	}
	return true
}

// ConnState is the http.Server.ConnState hook.
func (c *Conns) ConnState(nc net.Conn, s http.ConnState) {
	tc, ok := nc.(*trackedConn)
	if !ok || s == http.StateNew { // counted by admit already
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if tc.gone { // closed by the cap, and counted then
		return
	}
	switch s {
	case http.StateActive:
		c.unlink(tc)
		c.setState(tc, s)
	case http.StateIdle:
		c.setState(tc, s)
		c.push(tc)
	case http.StateClosed, http.StateHijacked:
		c.forget(tc)
		if tc.timedOut.Load() {
			c.timedOut.Add(1)
		} else {
			c.closed.Add(1)
		}
	}
}

func (c *Conns) setState(tc *trackedConn, s http.ConnState) {
	c.byState[tc.state]--
	tc.state = s
	c.byState[s]++
}

// forget stops counting tc. Called with c.mu held.
func (c *Conns) forget(tc *trackedConn) {
	c.unlink(tc)
	c.byState[tc.state]--
	c.open--
	tc.gone = true
}

// push appends tc to the waiting list. Called with c.mu held.
func (c *Conns) push(tc *trackedConn) {
	tc.listed = true
	tc.prev, tc.next = c.tail, nil
	if c.tail != nil {
		c.tail.next = tc
	} else {
		c.head = tc
	}
	c.tail = tc
}

// unlink removes tc from the waiting list, if there. Called with c.mu held.
func (c *Conns) unlink(tc *trackedConn) {
	if !tc.listed {
		return
	}
	if tc.prev != nil {
		tc.prev.next = tc.next
	} else {
		c.head = tc.next
	}
	if tc.next != nil {
		tc.next.prev = tc.prev
	} else {
		c.tail = tc.prev
	}
	tc.prev, tc.next, tc.listed = nil, nil, false
}

type capListener struct {
	net.Listener
	conns *Conns
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: nc}
		if l.conns.admit(tc) {
			return tc, nil
		}
		nc.Close()
	}
}

// trackedConn is a connection with its place in Conns. The fields under
// Conns.mu are state, gone, listed, prev and next.
type trackedConn struct {
	net.Conn
	state      http.ConnState
	gone       bool
	listed     bool
	prev, next *trackedConn

	// A deadline in the past, set by net/http to interrupt its own
	// background read, is not a timeout of the client; only deadlines set
	// in the present count.
	readDeadlineReal, writeDeadlineReal atomic.Bool
	timedOut                            atomic.Bool
}

// longAgo (2000-01-01, in Unix seconds) separates the deadlines net/http
// sets to interrupt a read (time.Unix(1, 0)) from real ones.
const longAgo = 946684800

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.readDeadlineReal.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && c.writeDeadlineReal.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	c.readDeadlineReal.Store(t.Unix() > longAgo)
	c.writeDeadlineReal.Store(t.Unix() > longAgo)
	return c.Conn.SetDeadline(t)
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.readDeadlineReal.Store(t.Unix() > longAgo)
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadlineReal.Store(t.Unix() > longAgo)
	return c.Conn.SetWriteDeadline(t)
}

// CloseWrite lets net/http half-close before closing after an error
// answer (400, 431), so the client reads the answer instead of a reset.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
