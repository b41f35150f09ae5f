package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"scalable-app/tools/test/kube"
	"scalable-app/tools/test/load"
)

// smokeStreak is how many greetings in a row must come from the new pods:
// the Ingress controller routes to the old ones for a moment after a
// rollout, while they drain.
const smokeStreak = 10

// smoke proves a deploy: every pod of the Deployment runs ref's digest and
// answers /readyz, the greeting comes through the Ingress, and a message
// makes the round trip through the database.
func (d *Deployer) smoke(ctx context.Context, env Env, ref ImageRef) error {
	if err := d.smokePods(ctx, env, ref); err != nil {
		return fmt.Errorf("smoke test of %s: %w", env.Name, err)
	}
	if err := d.smokeGreeting(ctx, env); err != nil {
		return fmt.Errorf("smoke test of %s: %w", env.Name, err)
	}
	if err := d.smokeAPI(ctx, env); err != nil {
		return fmt.Errorf("smoke test of %s: %w", env.Name, err)
	}
	return nil
}

// smokePods checks each live pod's image and asks its /readyz through the
// API server's pod proxy, which reaches pods on any cluster.
func (d *Deployer) smokePods(ctx context.Context, env Env, ref ImageRef) error {
	k := d.Target.Kubectl
	out, err := k.Output(ctx, "get", "deployment/"+deployment, "-n", env.Namespace, "-o", "jsonpath={.spec.replicas}")
	if err != nil {
		return err
	}
	want, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return fmt.Errorf("read the Deployment's replicas %q: %w", out, err)
	}
	pods, err := k.WaitReadyPods(ctx, env.Namespace, selector, want, d.RolloutTimeout)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if !runsDigest(p, ref.Digest) {
			return fmt.Errorf("pod %s runs %s, not %s", p.Name, strings.Join(p.ImageIDs, ","), ref.Digest)
		}
		body, err := k.Output(ctx, "get", "--raw", "/api/v1/namespaces/"+env.Namespace+"/pods/"+p.Name+":5000/proxy/readyz")
		if err != nil {
			return fmt.Errorf("/readyz of pod %s: %w", p.Name, err)
		}
		d.logf("pod %s: %s, /readyz %s", p.Name, ref.Digest[:19], strings.TrimSpace(body))
	}
	return nil
}

func runsDigest(p kube.Pod, digest string) bool {
	for _, id := range p.ImageIDs {
		if strings.HasSuffix(id, "@"+digest) || id == digest {
			return true
		}
	}
	return false
}

// smokeGreeting waits for smokeStreak greetings in a row through the Ingress.
func (d *Deployer) smokeGreeting(ctx context.Context, env Env) error {
	target := load.Target{URL: "http://" + d.Target.IngressAddr + "/", Host: env.Host}
	streak := 0
	err := kube.Poll(ctx, d.RolloutTimeout, 100*time.Millisecond, "wait for the greeting through the Ingress ("+env.Host+")",
		func(ctx context.Context) (bool, string, error) {
			rep, err := load.Get(ctx, target)
			var last string
			switch {
			case err != nil:
				last = err.Error()
			case rep.Status != http.StatusOK:
				last = fmt.Sprintf("status %d", rep.Status)
			case strings.TrimSpace(rep.Body) != d.Greeting:
				last = fmt.Sprintf("%q from %s", strings.TrimSpace(rep.Body), rep.Instance)
			default:
				streak++
				return streak >= smokeStreak, "", nil
			}
			streak = 0
			return false, "last answer: " + last + ", want " + strconv.Quote(d.Greeting), nil
		})
	if err != nil {
		return err
	}
	d.logf("GET http://%s/: %q, %d times in a row", env.Host, d.Greeting, smokeStreak)
	return nil
}

// smokeAPI posts a message through the Ingress and reads it back. The
// database may still be starting: the POST is retried on 503 with one
// Idempotency-Key, so it creates one message however often it is sent.
func (d *Deployer) smokeAPI(ctx context.Context, env Env) error {
	target := load.Target{URL: "http://" + d.Target.IngressAddr + "/api/messages", Host: env.Host}
	text := "pipeline smoke test " + time.Now().UTC().Format(time.RFC3339Nano)
	body, _ := json.Marshal(map[string]string{"text": text})
	post := load.Request{Method: http.MethodPost, Path: "/api/messages", Body: body, Header: http.Header{
		"Content-Type":    {"application/json"},
		"Idempotency-Key": {"pipeline-smoke-" + strconv.FormatInt(time.Now().UnixNano(), 36)},
	}}
	var created struct {
		ID       int64  `json:"id"`
		Text     string `json:"text"`
		Instance string `json:"instance"`
	}
	err := kube.Poll(ctx, d.RolloutTimeout, 500*time.Millisecond, "POST /api/messages through the Ingress",
		func(ctx context.Context) (bool, string, error) {
			rep, err := load.Send(ctx, target, post)
			if err != nil {
				return false, err.Error(), nil
			}
			switch rep.Status {
			case http.StatusCreated:
				if err := json.Unmarshal([]byte(rep.Body), &created); err != nil {
					return false, "", fmt.Errorf("read the created message %.200q: %w", rep.Body, err)
				}
				return true, "", nil
			case http.StatusServiceUnavailable:
				return false, "503 (the database is not ready yet)", nil
			}
			return false, "", fmt.Errorf("POST /api/messages: status %d: %.300s", rep.Status, rep.Body)
		})
	if err != nil {
		return err
	}
	// The read may reach another replica whose pool is still connecting to
	// the new database: a 503 there is the documented transient answer.
	get := load.Target{URL: "http://" + d.Target.IngressAddr + "/api/messages/" + strconv.FormatInt(created.ID, 10), Host: env.Host}
	err = kube.Poll(ctx, d.RolloutTimeout, 500*time.Millisecond, fmt.Sprintf("GET /api/messages/%d through the Ingress", created.ID),
		func(ctx context.Context) (bool, string, error) {
			rep, err := load.Get(ctx, get)
			if err != nil {
				return false, err.Error(), nil
			}
			var got struct{ Text string }
			switch {
			case rep.Status == http.StatusServiceUnavailable:
				return false, "503 (the database is not ready yet)", nil
			case rep.Status != http.StatusOK || json.Unmarshal([]byte(rep.Body), &got) != nil || got.Text != text:
				return false, "", fmt.Errorf("GET /api/messages/%d: status %d, %.300s; want the text just posted", created.ID, rep.Status, rep.Body)
			}
			return true, "", nil
		})
	if err != nil {
		return err
	}
	d.logf("POST /api/messages -> %d (written by %s), read back through the Ingress", created.ID, created.Instance)
	return nil
}
