# Images of scalable-app, built with BuildKit (the default builder of Docker 23+).
#   docker build -t scalable-app:latest .              production image (default target)
#   docker build --target dev -t scalable-app:dev .    hot-reload image for k8s/dev
#
# The build stage uses the official Go image of the version in go.mod. On a
# machine that cannot pull it, `make base-image` creates a local stand-in
# with the same name.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Dependencies first, so editing the source does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/scalable-app ./cmd/scalable-app

# The production image: the static binary and CA certificates, nothing else.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/scalable-app /scalable-app
# Numeric, so Kubernetes can verify runAsNonRoot without an /etc/passwd.
USER 65532:65532
EXPOSE 5000
ENTRYPOINT ["/scalable-app"]
