package activation

import (
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestNoSocketPassed(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"no variables":          {},
		"meant for another pid": {"LISTEN_PID": "99", "LISTEN_FDS": "1"},
	} {
		ln, err := Listener(env(vars), 42)
		if ln != nil || err != nil {
			t.Errorf("%s: Listener = %v, %v; want nil, nil", name, ln, err)
		}
	}
}

func TestBadVariables(t *testing.T) {
	for name, tt := range map[string]struct {
		vars map[string]string
		want string
	}{
		"pid not a number": {map[string]string{"LISTEN_PID": "me", "LISTEN_FDS": "1"}, "LISTEN_PID"},
		"no fds":           {map[string]string{"LISTEN_PID": "42"}, "LISTEN_FDS"},
		"zero fds":         {map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "0"}, "LISTEN_FDS"},
	} {
		_, err := Listener(env(tt.vars), 42)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, tt.want)
		}
	}
}
