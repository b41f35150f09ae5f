//go:build e2e

package database

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"scalable-app/tools/test/load"
)

// Each replica writes through its own port-forward; each replica's list then
// holds both messages, and `instance` names the pod that wrote each.
func (st *suite) testStep1ReplicasShareState(t *testing.T) {
	ctx := stepContext(t, 3*time.Minute)
	k := st.target.Kubectl
	pods, err := k.WaitReadyPods(ctx, namespace, appSelector, 2, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	direct := map[string]load.Target{}
	for _, p := range pods {
		addr, stop, err := k.PortForward(ctx, namespace, "pod/"+p.Name, 0, 5000)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		direct[p.Name] = load.Target{URL: "http://" + addr + "/"}
	}
	// Each replica connects and checks the schema on its own, retrying with
	// a backoff: one may answer 503 for some seconds after the other serves.
	for name, tg := range direct {
		start := time.Now()
		if err := st.waitAPI(ctx, tg, "pod "+name, time.Minute); err != nil {
			t.Fatal(err)
		}
		t.Logf("pod %s: API answering (waited %s)", name, time.Since(start).Round(100*time.Millisecond))
	}
	wrote := map[string]message{} // pod -> the message it wrote
	for name, tg := range direct {
		m, err := st.post(ctx, tg, fmt.Sprintf("%s written by %s", st.runID, name))
		if err != nil {
			t.Fatalf("write through pod %s: %v", name, err)
		}
		if m.Instance != name {
			t.Errorf("pod %s wrote message %d with instance %q, want its own name", name, m.ID, m.Instance)
		}
		wrote[name] = m
	}
	for reader, tg := range direct {
		msgs, err := st.all(ctx, tg)
		if err != nil {
			t.Fatalf("read through pod %s: %v", reader, err)
		}
		for writer, w := range wrote {
			i := slices.IndexFunc(msgs, func(m message) bool { return m.ID == w.ID })
			if i < 0 {
				t.Errorf("pod %s does not list message %d written by pod %s", reader, w.ID, writer)
				continue
			}
			if msgs[i].Text != w.Text || msgs[i].Instance != writer {
				t.Errorf("pod %s lists message %d as %+v, want text %q by %s", reader, w.ID, msgs[i], w.Text, writer)
			}
		}
	}
	t.Logf("pods %v each wrote one message and each lists both", slices.Sorted(maps.Keys(wrote)))
}
