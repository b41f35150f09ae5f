// Package load is the one load generator of the tools: the end-to-end
// suites run it during rollouts and pod deletions, k8s-bench and httpbench
// measure throughput with it.
//
// It sends requests at a fixed rate or from a fixed number of clients back
// to back, for a duration or until stopped, and counts every outcome: each
// status, each kind of error, latency percentiles, and which pod answered
// (the X-Instance header). A load or fault test must see every request that
// got no answer, so its clients never retry. That is why this package
// writes HTTP/1.1 on raw TCP connections instead of using net/http, or
// vegeta's library (github.com/tsenart/vegeta/v12/lib), which sends through
// net/http: http.Transport documents that it retries an idempotent request
// (GET, or one with a replayable body) after a network error on a reused
// connection, with no option to turn that off. Measured on Go 1.26: a
// server that drops the second request on a keep-alive connection without
// answering saw 3 requests on 2 connections while http.Client returned two
// 200s, so the lost request was hidden.
package load

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options describe a load.
type Options struct {
	Target     Target
	Request    *Request      // sent in place of GET of the target; its empty Path is the target's
	KeepAlive  int           // number of keep-alive clients
	Fresh      int           // number of fresh-connection clients
	Rate       int           // requests per second over all clients; 0: every client sends back to back
	Duration   time.Duration // how long to send; 0: until Stop
	Timeout    time.Duration // per request; DefaultTimeout when 0
	WantStatus int           // the status that counts as OK; 200 when 0
	WantBody   string        // when set, an OK status with another body counts as failed
}

// Latency are percentiles of the answered requests' latencies.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// Report counts the outcomes of a load.
type Report struct {
	KeepAlive, Fresh int // clients of each kind
	AskedRate        int // requests per second asked; 0 for back to back

	Sent        int            // requests sent (or tried: a failed connect counts)
	OK          int            // WantStatus (200 by default), with WantBody when set
	Status      map[int]int    // every status answered, by code
	BadBody     int            // WantStatus with another body than WantBody
	Errors      map[string]int // requests that got no whole answer, by phase and cause
	Missed      int            // rate ticks skipped because every client was busy
	ByInstance  map[string]int // OK answers by the pod that served them
	Connections int            // TCP connections opened
	Latency     Latency
	Samples     []string // the first failures, timestamped
	Elapsed     time.Duration
}

// NoAnswer counts the requests that got no whole answer.
func (r Report) NoAnswer() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Failed counts the requests that were not OK.
func (r Report) Failed() int { return r.Sent - r.OK }

// Rate is the achieved requests per second.
func (r Report) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// Clients names the clients used, for reports and failure messages.
func (r Report) Clients() string {
	var parts []string
	if r.KeepAlive > 0 {
		parts = append(parts, fmt.Sprintf("%d keep-alive", r.KeepAlive))
	}
	if r.Fresh > 0 {
		parts = append(parts, fmt.Sprintf("%d fresh-connection", r.Fresh))
	}
	pace := "back to back"
	if r.AskedRate > 0 {
		pace = fmt.Sprintf("at %d req/s", r.AskedRate)
	}
	return strings.Join(parts, " and ") + " clients (raw HTTP/1.1, no retries) " + pace
}

func (r Report) String() string {
	s := fmt.Sprintf("%s: %d requests in %s (%.0f req/s) on %d connections: %d ok, %d failed (%d without an answer %v, statuses %v, %d wrong bodies); latency p50 %s p90 %s p99 %s max %s",
		r.Clients(), r.Sent, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Connections, r.OK, r.Failed(),
		r.NoAnswer(), r.Errors, r.Status, r.BadBody,
		r.Latency.P50.Round(time.Microsecond), r.Latency.P90.Round(time.Microsecond),
		r.Latency.P99.Round(time.Microsecond), r.Latency.Max.Round(time.Microsecond))
	if len(r.ByInstance) > 0 {
		inst := make([]string, 0, len(r.ByInstance))
		for k, v := range r.ByInstance {
			inst = append(inst, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(inst)
		s += "; by pod: " + strings.Join(inst, " ")
	}
	if r.Missed > 0 {
		s += fmt.Sprintf("; %d ticks missed (every client busy)", r.Missed)
	}
	if len(r.Samples) > 0 {
		s += "; first failures: " + strings.Join(r.Samples, "; ")
	}
	return s
}

// counts is one client's tally; its own lock keeps Snapshot cheap.
type counts struct {
	mu        sync.Mutex
	sent, ok  int
	status    map[int]int
	badBody   int
	errors    map[string]int
	instances map[string]int
	latencies []time.Duration
	samples   []string
}

func (c *counts) record(rep Reply, err error, took time.Duration, wantStatus int, wantBody string) {
	if wantStatus == 0 {
		wantStatus = 200
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent++
	fail := ""
	switch {
	case err != nil:
		c.errors[errorKind(err)]++
		fail = err.Error()
	default:
		c.status[rep.Status]++
		c.latencies = append(c.latencies, took)
		switch {
		case rep.Status != wantStatus:
			fail = fmt.Sprintf("status %d from %q: %.80q", rep.Status, rep.Instance, rep.Body)
		case wantBody != "" && rep.Body != wantBody:
			c.badBody++
			fail = fmt.Sprintf("body %.80q from %q", rep.Body, rep.Instance)
		default:
			c.ok++
			c.instances[rep.Instance]++
		}
	}
	if fail != "" && len(c.samples) < 5 {
		c.samples = append(c.samples, time.Now().Format("15:04:05.000")+" "+fail)
	}
}

// Load is load in progress.
type Load struct {
	o       Options
	start   time.Time
	stop    chan struct{} // closed: send no new request
	once    sync.Once
	ended   time.Time
	done    chan struct{} // closed when every client has finished
	clients []*Client
	counts  []*counts
	mu      sync.Mutex
	missed  int
}

// Start starts the load; it runs until o.Duration has passed or Stop.
// Ending ctx aborts the requests in flight, which then count as failed.
func Start(ctx context.Context, o Options) (*Load, error) {
	if o.KeepAlive < 0 || o.Fresh < 0 || o.KeepAlive+o.Fresh == 0 {
		return nil, fmt.Errorf("load needs at least one client, got %d keep-alive and %d fresh", o.KeepAlive, o.Fresh)
	}
	l := &Load{o: o, stop: make(chan struct{}), done: make(chan struct{})}
	for i := range o.KeepAlive + o.Fresh {
		kind := KeepAlive
		if i >= o.KeepAlive {
			kind = Fresh
		}
		c, err := newClient(o.Target, kind, o.Request, o.Timeout)
		if err != nil {
			return nil, err
		}
		l.clients = append(l.clients, c)
		l.counts = append(l.counts, &counts{status: map[int]int{}, errors: map[string]int{}, instances: map[string]int{}})
	}
	l.start = time.Now()
	var tokens chan struct{}
	if o.Rate > 0 {
		tokens = make(chan struct{}, len(l.clients))
	}
	var wg sync.WaitGroup
	for i, c := range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for l.next(tokens) {
				begin := time.Now()
				rep, err := c.Do(ctx)
				l.counts[i].record(rep, err, time.Since(begin), o.WantStatus, o.WantBody)
			}
		}()
	}
	if tokens != nil {
		go l.pace(tokens)
	}
	if o.Duration > 0 {
		timer := time.AfterFunc(o.Duration, l.halt)
		go func() { <-l.done; timer.Stop() }()
	}
	unwatch := context.AfterFunc(ctx, l.halt)
	go func() {
		wg.Wait()
		unwatch()
		close(l.done)
	}()
	return l, nil
}

// next waits for the client's turn: a token at a fixed rate, at once back
// to back. It is false once the load stops.
func (l *Load) next(tokens chan struct{}) bool {
	if tokens == nil {
		select {
		case <-l.stop:
			return false
		default:
			return true
		}
	}
	select {
	case <-l.stop:
		return false
	case <-tokens:
		return true
	}
}

// pace hands out Rate tokens per second; a token no client is free for is
// counted as missed, so the schedule never slows to the server's pace.
func (l *Load) pace(tokens chan struct{}) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	issued := 0
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick.C:
			for due := int(now.Sub(l.start).Seconds()*float64(l.o.Rate)) - issued; due > 0; due-- {
				issued++
				select {
				case tokens <- struct{}{}:
				default:
					l.mu.Lock()
					l.missed++
					l.mu.Unlock()
				}
			}
		}
	}
}

func (l *Load) halt() {
	l.once.Do(func() {
		l.mu.Lock()
		l.ended = time.Now()
		l.mu.Unlock()
		close(l.stop)
	})
}

// Wait waits until the load has ended by itself (its Duration, or its
// context) and returns the report.
func (l *Load) Wait() Report {
	<-l.done
	return l.Snapshot()
}

// Stop sends no new request, waits for those in flight (each bounded by
// the timeout) and returns the report: nothing in flight is left uncounted.
func (l *Load) Stop() Report {
	l.halt()
	return l.Wait()
}

// Snapshot is the report so far, while the load runs.
func (l *Load) Snapshot() Report {
	r := Report{KeepAlive: l.o.KeepAlive, Fresh: l.o.Fresh, AskedRate: l.o.Rate,
		Status: map[int]int{}, Errors: map[string]int{}, ByInstance: map[string]int{}}
	var lat []time.Duration
	for _, c := range l.counts {
		c.mu.Lock()
		r.Sent += c.sent
		r.OK += c.ok
		r.BadBody += c.badBody
		for k, v := range c.status {
			r.Status[k] += v
		}
		for k, v := range c.errors {
			r.Errors[k] += v
		}
		for k, v := range c.instances {
			r.ByInstance[k] += v
		}
		lat = append(lat, c.latencies...)
		r.Samples = append(r.Samples, c.samples...)
		c.mu.Unlock()
	}
	select {
	case <-l.done:
		for _, c := range l.clients {
			r.Connections += c.Connections()
		}
	default: // the clients still run: their connection counts are theirs alone
	}
	sort.Strings(r.Samples) // timestamped: the earliest first
	if len(r.Samples) > 5 {
		r.Samples = r.Samples[:5]
	}
	r.Latency = percentiles(lat)
	l.mu.Lock()
	r.Missed = l.missed
	end := l.ended
	l.mu.Unlock()
	if end.IsZero() {
		end = time.Now()
	}
	r.Elapsed = end.Sub(l.start)
	return r
}

func percentiles(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	at := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: lat[len(lat)-1]}
}

// Generate runs a load for o.Duration (which must be set) and reports it.
func Generate(ctx context.Context, o Options) (Report, error) {
	if o.Duration <= 0 {
		return Report{}, fmt.Errorf("load for a duration needs a positive duration, got %s", o.Duration)
	}
	l, err := Start(ctx, o)
	if err != nil {
		return Report{}, err
	}
	return l.Wait(), nil
}
