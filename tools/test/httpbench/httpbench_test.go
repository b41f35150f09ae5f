package httpbench

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"scalable-app/tools/internal/command"
)

func TestTreeRSSCountsThisProcess(t *testing.T) {
	if rss := treeRSS(os.Getpid(), "VmRSS"); rss <= 0 {
		t.Fatalf("VmRSS of the test process = %d KiB", rss)
	}
}

// Measure runs the server command pinned to CPU 0 and measures it with the
// load generator; the server is this test binary, run again to serve.
func TestMeasureAServer(t *testing.T) {
	if _, err := os.Stat("/usr/bin/taskset"); err != nil {
		t.Skip("taskset (util-linux) is not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := command.New(command.OS{}, nil)
	target := Target{Name: "test server", Cmd: func(port int) command.Cmd {
		return command.Cmd{Name: self, Args: []string{"-test.run=^TestServeForMeasure$"}, Env: []string{"HTTPBENCH_TEST_PORT=" + strconv.Itoa(port)}}
	}}
	r, err := Measure(context.Background(), run, target, Load{Duration: 300 * time.Millisecond, Connections: 4}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS <= 0 || r.Failed != 0 || r.Report.KeepAlive != 4 || r.P50 <= 0 || r.P99 < r.P50 || r.IdleRSSKiB <= 0 || r.PeakRSSKiB < r.IdleRSSKiB ||
		r.CPUPerRequest <= 0 || r.GeneratorCPUPerRequest <= 0 || r.DatabaseCPUPerRequest != 0 {
		t.Fatalf("measured %+v", r)
	}
}

// TestServeForMeasure is the server of TestMeasureAServer, when run by it.
func TestServeForMeasure(t *testing.T) {
	port := os.Getenv("HTTPBENCH_TEST_PORT")
	if port == "" {
		t.Skip("run by TestMeasureAServer only")
	}
	_ = http.ListenAndServe("127.0.0.1:"+port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
}
