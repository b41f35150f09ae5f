// Package load sends HTTP requests to the service at a set rate, or as fast as
// it can, and counts every outcome: the end-to-end suites assert on the counts
// and the benchmark reports them.
package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Greeting is the body the service answers on GET /.
const Greeting = "Hello from Kubernetes"

// InstanceHeader names the pod that served a response.
const InstanceHeader = "X-Instance"

// Target is where requests go.
type Target struct {
	URL  string // e.g. http://127.0.0.1:30080/
	Host string // Host header, e.g. scalable.local; empty keeps the URL's
}

// Reply is one request's outcome.
type Reply struct {
	Status   int
	Body     string
	Instance string
}

// Get sends one GET with client and reads the whole reply.
func Get(ctx context.Context, client *http.Client, t Target) (Reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return Reply{}, fmt.Errorf("build request for %s: %w", t.URL, err)
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	resp, err := client.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return Reply{}, fmt.Errorf("read body: %w", err)
	}
	return Reply{Status: resp.StatusCode, Body: string(body), Instance: resp.Header.Get(InstanceHeader)}, nil
}

// Client returns an HTTP client for load: keep-alive connections, as a browser
// or a proxy in front would use, unless fresh is set (then every request opens
// a new connection, so kube-proxy balances each one).
func Client(conns int, fresh bool) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
			DisableKeepAlives:   fresh,
		},
	}
}

// Result counts the outcomes of a run.
type Result struct {
	Sent       int            // requests sent
	OK         int            // 200 with the greeting
	Status     map[int]int    // other statuses, by code
	BadBody    int            // 200 with another body
	Errors     int            // connection errors and timeouts
	Missed     int            // rate ticks skipped because every worker was busy
	Samples    []string       // the first few failures, for the failure message
	ByInstance map[string]int // successful replies by serving pod
	Elapsed    time.Duration
}

// Failed counts requests that did not get a 200 with the greeting.
func (r Result) Failed() int {
	n := r.BadBody + r.Errors
	for _, c := range r.Status {
		n += c
	}
	return n
}

// Rate is the achieved requests per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	inst := make([]string, 0, len(r.ByInstance))
	for k, v := range r.ByInstance {
		inst = append(inst, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(inst)
	s := fmt.Sprintf("%d requests in %s (%.0f req/s): %d ok, %d errors, %d non-200 %v, %d wrong body; by pod: %s",
		r.Sent, r.Elapsed.Round(time.Millisecond), r.Rate(), r.OK, r.Errors, sum(r.Status), r.Status, r.BadBody, strings.Join(inst, " "))
	if r.Missed > 0 {
		s += fmt.Sprintf("; %d ticks missed (workers busy)", r.Missed)
	}
	if len(r.Samples) > 0 {
		s += "; first failures: " + strings.Join(r.Samples, "; ")
	}
	return s
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

type recorder struct {
	mu sync.Mutex
	r  Result
}

func (rec *recorder) record(rep Reply, err error) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.r.Sent++
	fail := ""
	switch {
	case err != nil:
		rec.r.Errors++
		fail = err.Error()
	case rep.Status != http.StatusOK:
		rec.r.Status[rep.Status]++
		fail = fmt.Sprintf("status %d from %q: %.80q", rep.Status, rep.Instance, rep.Body)
	case rep.Body != Greeting:
		rec.r.BadBody++
		fail = fmt.Sprintf("body %.80q from %q", rep.Body, rep.Instance)
	default:
		rec.r.OK++
		rec.r.ByInstance[rep.Instance]++
	}
	if fail != "" && len(rec.r.Samples) < 5 {
		rec.r.Samples = append(rec.r.Samples, time.Now().Format("15:04:05.000")+" "+fail)
	}
}

// Run is load in progress.
type Run struct {
	cancel context.CancelFunc
	done   chan struct{}
	rec    *recorder
	start  time.Time
}

// Start sends rate requests per second to t from workers concurrent clients
// until Stop (open loop: a slow reply does not slow the schedule, up to the
// number of workers).
func Start(ctx context.Context, t Target, rate, workers int) *Run {
	ctx, cancel := context.WithCancel(ctx)
	run := &Run{cancel: cancel, done: make(chan struct{}), rec: newRecorder(), start: time.Now()}
	client := Client(workers, false)
	tokens := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tokens {
				rep, err := Get(ctx, client, t)
				if ctx.Err() != nil {
					return // stopped mid-request: not the service's failure
				}
				run.rec.record(rep, err)
			}
		}()
	}
	go func() {
		defer close(run.done)
		defer wg.Wait()
		defer close(tokens)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		issued := 0
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				due := int(now.Sub(run.start).Seconds()*float64(rate)) - issued
				for ; due > 0; due-- {
					issued++
					select {
					case tokens <- struct{}{}:
					default:
						run.rec.mu.Lock()
						run.rec.r.Missed++
						run.rec.mu.Unlock()
					}
				}
			}
		}
	}()
	return run
}

// Stop ends the load, waits for requests in flight and returns the counts.
func (run *Run) Stop() Result {
	elapsed := time.Since(run.start)
	run.cancel()
	<-run.done
	run.rec.mu.Lock()
	defer run.rec.mu.Unlock()
	r := run.rec.r
	r.Elapsed = elapsed
	return r
}

// Max sends requests back to back from conc concurrent clients for d and
// returns the counts (closed loop: the achieved rate is the throughput).
func Max(ctx context.Context, t Target, conc int, d time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	rec := newRecorder()
	client := Client(conc, false)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rep, err := Get(ctx, client, t)
				if ctx.Err() != nil {
					return
				}
				rec.record(rep, err)
			}
		}()
	}
	wg.Wait()
	r := rec.r
	r.Elapsed = time.Since(start)
	return r
}

func newRecorder() *recorder {
	return &recorder{r: Result{Status: map[int]int{}, ByInstance: map[string]int{}}}
}
