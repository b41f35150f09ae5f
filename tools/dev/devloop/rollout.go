package devloop

import (
	"context"
	"fmt"
	"strings"
	"time"

	"scalable-app/tools/internal/command"
)

// waitRollout waits until the Deployment has rolled out, checking the dev
// pod on every poll: a pod that fails (crash loop, image or configuration
// error) is reported at once with its state, events and last log lines,
// instead of waiting out the rollout timeout in silence.
func (l *loop) waitRollout(ctx context.Context) error {
	l.progress("waiting for the rollout (the pod's first build included)")
	deadline := time.Now().Add(l.o.RolloutTimeout)
	last := ""
	for {
		pods, err := l.devPods(ctx)
		if err != nil {
			return err
		}
		for _, p := range pods {
			if f, ok := p.failure(); ok {
				return l.reportFailure(ctx, p.Metadata.Name, f)
			}
		}
		status, err := l.k.Output(ctx, "rollout", "status", "deployment/"+Deployment, "-n", Namespace, "--watch=false")
		if err != nil {
			return fmt.Errorf("wait for the rollout: %w", err)
		}
		status = strings.TrimSpace(status)
		if strings.Contains(status, "successfully rolled out") {
			l.progress("rolled out")
			return nil
		}
		if status != last {
			l.progress("%s", status)
			last = status
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment/%s has not rolled out after %s: %s", Deployment, l.o.RolloutTimeout, status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(l.o.PollInterval):
		}
	}
}

func (l *loop) devPods(ctx context.Context) ([]pod, error) {
	var list struct{ Items []pod }
	if err := l.k.JSON(ctx, &list, "get", "pods", "-n", Namespace, "-l", "app="+Deployment); err != nil {
		return nil, fmt.Errorf("check the dev pod: %w", err)
	}
	return list.Items, nil
}

// reportFailure prints what a failing pod shows and returns the error that
// ends the dev loop.
func (l *loop) reportFailure(ctx context.Context, name string, f podFailure) error {
	l.progress("the dev pod %s is failing: %s", name, f)
	events, err := l.k.Output(ctx, "get", "events", "-n", Namespace,
		"--field-selector", "involvedObject.name="+name, "--sort-by=.lastTimestamp")
	if err != nil {
		events = err.Error()
	}
	l.progress("its recent events:\n%s", indent(command.LastLines(events, 10)))
	logs := l.lastLogs(ctx, name, f.container)
	l.progress("its last log lines (container %s):\n%s", f.container, indent(logs))
	hint := ""
	if strings.Contains(logs, "permission denied") {
		hint = fmt.Sprintf("; the pod's user (uid %d) cannot read the source: chmod -R a+rX %s", PodUID, l.dir)
	}
	return fmt.Errorf("the dev pod %s is failing (%s)%s", name, f, hint)
}

// lastLogs are the last lines of the container's previous run (the one that
// crashed), else of its current one.
func (l *loop) lastLogs(ctx context.Context, pod, container string) string {
	args := []string{"logs", pod, "-n", Namespace, "-c", container, "--tail=20"}
	out, err := l.k.Output(ctx, append(args, "--previous")...)
	if err != nil || strings.TrimSpace(out) == "" {
		out, err = l.k.Output(ctx, args...)
	}
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if strings.TrimSpace(out) == "" {
		return "(the log is empty)"
	}
	return strings.TrimRight(out, "\n")
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// pod is what the dev loop reads of a pod from `kubectl get pods -o json`.
type pod struct {
	Metadata struct {
		Name              string
		DeletionTimestamp string `json:"deletionTimestamp"`
	}
	Status struct {
		InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
		ContainerStatuses     []containerStatus `json:"containerStatuses"`
	}
}

type containerStatus struct {
	Name         string
	Ready        bool
	RestartCount int `json:"restartCount"`
	State        containerState
	LastState    containerState `json:"lastState"`
}

type containerState struct {
	Waiting *struct {
		Reason  string
		Message string
	}
	Terminated *struct {
		Reason   string
		Message  string
		ExitCode int `json:"exitCode"`
	}
}

// failingReason reports whether a container waiting for this reason will
// not start without a change: the rollout would only time out.
func failingReason(reason string) bool {
	switch reason {
	case "CrashLoopBackOff", "Error", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
		"InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
		return true
	}
	return false
}

// podFailure says which container of a pod fails, and how.
type podFailure struct {
	container string
	state     string
}

func (f podFailure) String() string { return "container " + f.container + ": " + f.state }

// failure reports whether the pod is failing: a container waiting for a
// failing reason, exited with an error, or restarted after a crash and not
// ready. A pod being deleted (the previous one of a restart) does not count.
func (p pod) failure() (podFailure, bool) {
	if p.Metadata.DeletionTimestamp != "" {
		return podFailure{}, false
	}
	statuses := append(append([]containerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, c := range statuses {
		var what []string
		if w := c.State.Waiting; w != nil && failingReason(w.Reason) {
			what = append(what, strings.TrimSpace(w.Reason+" "+w.Message))
		}
		if t := c.State.Terminated; t != nil && t.ExitCode != 0 {
			what = append(what, fmt.Sprintf("exited with code %d (%s)", t.ExitCode, t.Reason))
		}
		if t := c.LastState.Terminated; t != nil && c.RestartCount > 0 && !c.Ready {
			what = append(what, fmt.Sprintf("%d restarts, last exit code %d (%s)", c.RestartCount, t.ExitCode, t.Reason))
		}
		if len(what) > 0 {
			return podFailure{container: c.Name, state: strings.Join(what, "; ")}, true
		}
	}
	return podFailure{}, false
}
