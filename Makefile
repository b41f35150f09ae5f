# scalable-app: `make run` serves on :5000, `make test` runs the fast suite.
# `make help` lists every target.

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
IMAGE    ?= scalable-app:latest
# Seconds of fuzzing in `make test`; `make fuzz` runs longer.
FUZZTIME ?= 10s

.PHONY: help run build test fuzz lint base-image image test-image bench \
	cluster-up cluster-down cluster-load cluster-test \
	e2e e2e-manifests lint-manifests e2e-devloop dev dev-local bench-reload

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

run: ## run the service on :5000 (settings: go run ./cmd/scalable-app --help)
	go run -ldflags "$(LDFLAGS)" ./cmd/scalable-app

build: ## build bin/scalable-app, static, with version and revision embedded
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/scalable-app ./cmd/scalable-app

test: lint ## the fast suite: vet, unit and in-process tests, a short fuzz run
	go test -race -count=1 ./...
	go test -run='^$$' -fuzz=FuzzServeRequest -fuzztime=$(FUZZTIME) ./internal/server

fuzz: ## fuzz request handling for 5 minutes
	go test -run='^$$' -fuzz=FuzzServeRequest -fuzztime=5m ./internal/server

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	go vet ./...
	go vet -tags e2e ./e2e/...

base-image: ## create the Dockerfile's golang base image locally when it cannot be pulled (root)
	go run ./cmd/baseimage

image: base-image ## docker build -t scalable-app:latest .
	DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) .

test-image: ## build the real image and test it in Docker (installs and starts Docker if needed; root)
	go test -tags e2e -count=1 -v -timeout 30m ./e2e/image

bench: ## scalable-app vs bare net/http vs the seed's Flask app (Markdown report on stdout)
	go run ./cmd/httpbench

cluster-up: ## start the real single-node Kubernetes test cluster, or report it up (root; first build 15-25 min, then ~12 s)
	go run ./cmd/testcluster up

cluster-down: ## stop the test cluster and remove everything it created on the host (root)
	go run ./cmd/testcluster down

cluster-load: ## load a local docker image into the test cluster: make cluster-load IMAGE=scalable-app:latest
	go run ./cmd/testcluster load $(IMAGE)

cluster-test: ## the test cluster's smoke suite (root; kills, stops and restarts the cluster, leaves it up)
	go test -tags e2e -count=1 -v -timeout 30m ./e2e/cluster

e2e: e2e-manifests e2e-devloop ## every end-to-end suite against the cluster (KUBECONFIG or the test cluster)

e2e-manifests: image ## k8s/ proven on a real cluster: the test cluster, or KUBECONFIG's (e.g. minikube)
	go test -tags e2e -count=1 -v -timeout 30m ./e2e/manifests

lint-manifests: ## kube-score on k8s/ and its rendered overlays, no cluster needed (silenced checks: k8s/kube-score.conf)
	go run ./e2e/cmd/lint-manifests

e2e-devloop: ## the hot-reload dev loop on the test cluster: dev image, k8s/dev, port-forward across edits (root)
	go test -tags e2e -count=1 -v -timeout 25m ./e2e/devloop

dev: ## the dev loop in minikube or the test cluster: mount, apply, port-forward 8080, logs (DEV_FLAGS=--help)
	go run ./cmd/devloop $(DEV_FLAGS)

dev-local: ## the hot reloader on this machine, no cluster: http://localhost:5000 (RELOAD_FLAGS=--help)
	go run ./cmd/hotreload $(RELOAD_FLAGS)

bench-reload: ## save-to-new-response latency of the reloader (polling, inotify) vs air, 20 edits each
	go run ./internal/reload/bench
