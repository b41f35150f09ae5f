package httpbench

import (
	"os"
	"testing"
	"time"
)

const wrkOutput = `Running 10s test @ http://127.0.0.1:41303/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.12ms  412.50us  14.20ms   85.10%
    Req/Sec    46.23k     3.01k   51.02k    70.00%
  Latency Distribution
     50%    1.09ms
     75%    1.30ms
     90%    1.55ms
     99%    3.55ms
  460012 requests in 10.00s, 62.11MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  46005.12
Transfer/sec:      6.21MB
`

func TestParseWrk(t *testing.T) {
	var r Result
	if err := parseWrk(wrkOutput, &r); err != nil {
		t.Fatal(err)
	}
	if r.RPS != 46005.12 || r.P50 != 1090*time.Microsecond || r.P99 != 3550*time.Microsecond {
		t.Errorf("parsed %+v", r)
	}
	if r.Non2xx != 4 || r.SocketError != 3 {
		t.Errorf("errors: non-2xx %d, socket %d; want 4 and 3", r.Non2xx, r.SocketError)
	}
	if err := parseWrk("unable to connect", &r); err == nil {
		t.Error("no error for output without results")
	}
}

func TestTreeRSSCountsThisProcess(t *testing.T) {
	if rss := treeRSS(os.Getpid(), "VmRSS"); rss <= 0 {
		t.Fatalf("VmRSS of the test process = %d KiB", rss)
	}
}
