# scalable-app: `make run` serves on :5000, `make test` runs the fast suite.
# `make help` lists every target.

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
IMAGE    ?= scalable-app:latest
ENV      ?= test
# Seconds of fuzzing in `make test`; `make fuzz` runs longer.
FUZZTIME ?= 10s

# go.mod asks for Go 1.27.3; with GOTOOLCHAIN=auto (Go's default, which some
# installations override with local) an older go command fetches it from
# the module proxy once.
export GOTOOLCHAIN ?= auto

# The tools (hot reloader, dev loop, test cluster, benchmarks, e2e suites)
# are a module of their own in tools/; make builds each into bin/ and runs it
# from the repository root, so Ctrl-C reaches the tool and not `go run`.
TOOL = bin/tools

.PHONY: help run build test test-service test-tools fuzz lint base-image image test-image postgres-image test-postgres-image monitoring-images scan vulndb-update test-scan pipeline deploy registry-down e2e-pipeline bench bench-db \
	cluster-up cluster-down cluster-load cluster-test \
	e2e e2e-manifests e2e-database e2e-monitoring monitoring-gen lint-manifests e2e-devloop dev dev-local bench-reload FORCE

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

run: build ## run the service on :5000 (settings: bin/scalable-app --help)
	bin/scalable-app

build: ## build bin/scalable-app, static, with version and revision embedded
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/scalable-app ./cmd/scalable-app

# Every tool binary is rebuilt on use (go build is a no-op when nothing changed).
$(TOOL)/%: FORCE
	cd tools && go build -o ../$@ ./cmd/$*

test: lint test-service test-tools ## the fast suite: lint, unit and in-process tests of the service and the tools, a short fuzz run

test-service: ## the service's tests, with the race detector and a short fuzz run
	go test -race -count=1 ./...
	go test -run='^$$' -fuzz=FuzzServeRequest -fuzztime=$(FUZZTIME) ./internal/server

test-tools: ## the tools' unit tests (no root, no cluster)
	cd tools && go test -race -count=1 ./...

fuzz: ## fuzz request handling for 5 minutes
	go test -run='^$$' -fuzz=FuzzServeRequest -fuzztime=5m ./internal/server

lint: $(TOOL)/lint-workflows ## gofmt and go vet, on the service and the tools (e2e suites included); actionlint on .github/workflows
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	go vet ./...
	cd tools && go vet ./... && go vet -tags e2e ./...
	$(TOOL)/lint-workflows

base-image: $(TOOL)/baseimage ## create the Dockerfile's golang base image locally when it cannot be pulled (root)
	$(TOOL)/baseimage

image: base-image ## docker build -t scalable-app:latest .
	DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) .

test-image: ## build the real image and test it in Docker (installs and starts Docker if needed; root)
	cd tools && go test -tags e2e -count=1 -v -timeout 30m ./test/e2e/image

postgres-image: $(TOOL)/postgres-image ## provide k8s/base/postgres.yaml's image: present, pulled, or a stand-in from Debian's packages (root)
	$(TOOL)/postgres-image

test-postgres-image: ## the postgres image against the official image's contract, in Docker (provides it first; root)
	cd tools && go test -tags e2e -count=1 -v -timeout 20m ./test/e2e/postgres

monitoring-images: $(TOOL)/monitoring-images ## provide prom/prometheus and the postgres exporter (k8s/monitoring, k8s/base/postgres.yaml): present, pulled, or stand-ins built from the Go module proxy (root)
	$(TOOL)/monitoring-images

scan: image $(TOOL)/scan ## govulncheck and Trivy, offline: source, image (and its SBOM), Dockerfile and manifests, secrets; reports in artifacts/scan (SCAN_FLAGS=--help)
	$(TOOL)/scan $(SCAN_FLAGS)

vulndb-update: $(TOOL)/scan ## move security/scan.conf's Go vulnerability database pin to the newest version on the module proxy
	$(TOOL)/scan --update-vulndb

test-scan: image ## the scanners proven on fixtures (a called vulnerable function, an insecure pod, a fake key), then the real tree clean (root: Docker)
	cd tools && go test -tags e2e -count=1 -v -timeout 30m ./test/e2e/scan

pipeline: $(TOOL)/pipeline ## build, test, scan, sign, deploy to test, promote to prod: the local registry and the test cluster (root; PIPELINE_FLAGS=--help)
	$(TOOL)/pipeline $(PIPELINE_FLAGS)

deploy: $(TOOL)/pipeline ## one signed digest into an environment, verified, smoke-tested, rolled back on failure: make deploy ENV=test REF=<image>@sha256:... (DEPLOY_FLAGS=--help)
	$(TOOL)/pipeline deploy --env $(ENV) $(DEPLOY_FLAGS) $(REF)

registry-down: $(TOOL)/pipeline ## stop the pipeline's registry (localhost:5001) and remove its images
	$(TOOL)/pipeline registry down

e2e-pipeline: $(TOOL)/pipeline postgres-image monitoring-images ## the pipeline proven on the test cluster: two releases promoted under load, a broken one rolled back, an unsigned digest refused
	cd tools && go test -tags e2e -count=1 -v -timeout 40m ./test/e2e/pipeline

bench: $(TOOL)/httpbench ## scalable-app vs bare net/http vs the seed's Flask app (Markdown report on stdout)
	$(TOOL)/httpbench

bench-db: $(TOOL)/dbbench ## the guestbook API on PostgreSQL vs bare net/http + pgx vs Flask + psycopg2 (Markdown report on stdout)
	$(TOOL)/dbbench

cluster-up: $(TOOL)/testcluster ## start the real single-node Kubernetes test cluster, or report it up (root; first build about 15 min, then ~12 s)
	$(TOOL)/testcluster up

cluster-down: $(TOOL)/testcluster ## stop the test cluster and remove everything it created on the host (root)
	$(TOOL)/testcluster down

cluster-load: $(TOOL)/testcluster ## load a local docker image into the test cluster: make cluster-load IMAGE=scalable-app:latest
	$(TOOL)/testcluster load $(IMAGE)

cluster-test: ## the test cluster's smoke suite (root; kills, stops and restarts the cluster, leaves it up)
	cd tools && go test -tags e2e -count=1 -v -timeout 30m ./test/e2e/cluster

e2e: e2e-manifests e2e-database e2e-monitoring e2e-devloop e2e-pipeline ## every end-to-end suite against the cluster (KUBECONFIG or the test cluster)

e2e-manifests: image ## k8s/ proven on a real cluster: the test cluster, or KUBECONFIG's (e.g. minikube)
	cd tools && go test -tags e2e -count=1 -v -timeout 30m ./test/e2e/manifests

e2e-database: image postgres-image monitoring-images ## the guestbook on PostgreSQL on a real cluster: shared state, database pod deleted under writes, rollout with idempotent retries, Chromium
	cd tools && go test -tags e2e -count=1 -v -timeout 30m ./test/e2e/database

e2e-monitoring: image postgres-image monitoring-images ## k8s/monitoring on a real cluster: discovery, every dashboard query on live data, the replicas-down alert, a console screenshot
	cd tools && go test -tags e2e -count=1 -v -timeout 30m ./test/e2e/monitoring

monitoring-gen: $(TOOL)/monitoring-gen ## regenerate the Grafana dashboard and the PrometheusRule (tools/dev/monitoring)
	$(TOOL)/monitoring-gen

lint-manifests: $(TOOL)/lint-manifests ## kube-score on k8s/ and its rendered overlays, no cluster needed (silenced checks: k8s/kube-score.conf)
	$(TOOL)/lint-manifests

e2e-devloop: ## the hot-reload dev loop on the test cluster: dev image, k8s/dev, port-forward across edits (root)
	cd tools && go test -tags e2e -count=1 -v -timeout 25m ./test/e2e/devloop

dev: $(TOOL)/devloop $(TOOL)/testcluster ## the dev loop in minikube or the test cluster: mount, apply, port-forward 8080, logs (DEV_FLAGS=--help)
	$(TOOL)/devloop $(DEV_FLAGS)

dev-local: $(TOOL)/hotreload ## the hot reloader on this machine, no cluster: http://localhost:5000 (RELOAD_FLAGS=--help)
	$(TOOL)/hotreload $(RELOAD_FLAGS)

bench-reload: $(TOOL)/reloadbench ## save-to-new-response latency of the reloader (polling, inotify) vs air, 20 edits each
	$(TOOL)/reloadbench
