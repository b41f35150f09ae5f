package dockerengine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"scalable-app/tools/internal/command"
)

func TestEnsureStartsNothingWhenAnEngineAnswers(t *testing.T) {
	fake := &command.Fake{}
	e, err := Ensure(context.Background(), command.New(fake, nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"docker version --format {{.Server.Version}}"}; !slices.Equal(fake.Lines(), want) {
		t.Fatalf("commands %q, want only %q", fake.Lines(), want)
	}
	if e.pid != 0 {
		t.Fatal("an engine found running is recorded as started, so Stop would stop it")
	}
	if err := e.Stop(); err != nil {
		t.Fatalf("Stop of an engine not started here: %v", err)
	}
}

func TestFindBuilder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		buildx  bool
		version string
		want    Builder
		wantErr bool
	}{
		{"buildx plugin", true, "27.5.1", Builder{Command: "docker"}, false},
		{"Docker 20.10 without buildx", false, "20.10.24+dfsg1", Builder{Command: "docker", Env: []string{"DOCKER_BUILDKIT=1"}}, false},
		{"newer Docker without buildx", false, "27.5.1", Builder{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &command.Fake{Respond: func(c command.Cmd) (string, error) {
				switch line := c.Line(); {
				case strings.HasPrefix(line, "docker buildx"):
					if !tc.buildx {
						return "", errors.New("docker: 'buildx' is not a docker command")
					}
				case strings.Contains(line, "version --format {{.Client.Version}}"):
					return tc.version + "\n", nil
				}
				return "", nil
			}}
			got, err := FindBuilder(context.Background(), command.New(fake, nil))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got.Command != tc.want.Command || !slices.Equal(got.Env, tc.want.Env) {
				t.Fatalf("builder %+v, want %+v", got, tc.want)
			}
		})
	}
}
