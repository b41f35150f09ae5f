package dbbench

import (
	"testing"
	"time"

	"scalable-app/tools/test/httpbench"
)

func rps(v ...float64) []httpbench.Result {
	var out []httpbench.Result
	for _, r := range v {
		out = append(out, httpbench.Result{RPS: r})
	}
	return out
}

// Each round's ratio pairs the runs of the same round; the median of an
// even count is the mean of the middle two; rounds one side lacks are left out.
func TestRoundRatios(t *testing.T) {
	for _, c := range []struct {
		a, b   []httpbench.Result
		median float64
		list   string
	}{
		{rps(500, 900, 600), rps(100, 100, 200), 5, "5.0, 9.0, 3.0"},
		{rps(400, 600, 700, 800), rps(100, 100, 100, 100), 6.5, "4.0, 6.0, 7.0, 8.0"},
		{rps(300, 1000), rps(100), 3, "3.0"},
		{nil, rps(100), 0, ""},
	} {
		if got := medianRatio(c.a, c.b); got != c.median {
			t.Errorf("medianRatio(%v, %v) = %v, want %v", c.a, c.b, got, c.median)
		}
		if got := ratios(c.a, c.b); got != c.list {
			t.Errorf("ratios = %q, want %q", got, c.list)
		}
	}
}

func TestBusy(t *testing.T) {
	if got := busy(125*time.Microsecond, 4000); got != 50 {
		t.Errorf("busy(125µs, 4000/s) = %v%%, want 50%%", got)
	}
}
