# Images of scalable-app, built with BuildKit (the default builder of Docker 23+).
#   docker build -t scalable-app:latest .              production image (default target)
#   docker build --target dev -t scalable-app:dev .    hot-reload image for k8s/dev
#
# The build stage uses the official Go image of the version in go.mod. On a
# machine that cannot pull it, `make base-image` creates a local stand-in
# with the same name.

FROM golang:1.27.3-bookworm AS build
WORKDIR /src
# Dependencies first, so editing the source does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
# Only the service's sources: an edit to the tools, a test or the docs
# leaves this layer and the build below cached.
COPY cmd/scalable-app ./cmd/scalable-app
COPY internal ./internal
ARG VERSION=dev
ARG REVISION=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/scalable-app ./cmd/scalable-app

# The hot reloader, from the tools module (which uses the service's packages
# from ../, hence both go.mod files).
FROM golang:1.27.3-bookworm AS hotreload
WORKDIR /src
COPY go.mod go.sum ./
COPY tools/go.mod tools/go.sum ./tools/
COPY internal ./internal
COPY tools/cmd/hotreload ./tools/cmd/hotreload
COPY tools/dev ./tools/dev
COPY tools/internal ./tools/internal
WORKDIR /src/tools
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -o /out/hotreload ./cmd/hotreload

# The hot-reload image (k8s/dev/deployment-dev.yaml): the Go toolchain, the
# reloader, go.mod's modules (the pod builds with no network) and a warm
# build cache, which the pod copies into its writable GOCACHE volume.
FROM golang:1.27.3-bookworm AS dev
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin dev \
 && install -d -o dev -g dev /var/cache/go-build /app
# Modules in a layer of the image, not in a cache mount: the pod has no
# network, so everything go.mod needs must be here.
WORKDIR /tmp/mod
COPY go.mod go.sum ./
RUN go mod download && rm -rf /tmp/mod
ENV GOCACHE=/var/cache/go-build GOFLAGS=-mod=readonly GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0
COPY --from=hotreload /out/hotreload /usr/local/bin/hotreload
# As the pod's user, so the cache is writable by it: one build of the app
# with the reloader's flags leaves every package the pod's first build needs
# compiled.
USER 10001:10001
WORKDIR /src
RUN --mount=type=bind,target=/src \
    go telemetry off \
 && go build -trimpath -buildvcs=false -ldflags="-s -w" -o /tmp/warm ./cmd/scalable-app \
 && rm /tmp/warm
WORKDIR /app
EXPOSE 5000
# What k8s/dev/deployment-dev.yaml runs, the counterpart of `flask run` with
# FLASK_DEBUG=1: rebuild and restart on every saved change in /app.
CMD ["hotreload", "--dir=/app", "--addr=:5000"]

# The production image: the static binary and CA certificates, nothing else.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/scalable-app /scalable-app
# Numeric, so Kubernetes can verify runAsNonRoot without an /etc/passwd.
USER 65532:65532
EXPOSE 5000
ENTRYPOINT ["/scalable-app"]
