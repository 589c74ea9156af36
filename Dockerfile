# syntax=docker/dockerfile:1
# capa-imds as a container KRM function (kustomize `container.image`, kpt `image:`).
#   make image                       # this platform
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=v0.1.0 -t ghcr.io/capa-imds/capa-imds:v0.1.0 .
# The build stage runs on the build machine's platform and cross-compiles for TARGETOS/TARGETARCH.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY fn/ fn/
COPY transformers/ transformers/
COPY internal/resourcelist/ internal/resourcelist/
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/capa-imds ./cmd/capa-imds

# distroless/static, not scratch: it has /etc/passwd, CA certificates and tzdata, and a nonroot
# user; kustomize and kpt run function containers as nobody with no network.
FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="capa-imds" \
      org.opencontainers.image.description="KRM function requiring IMDSv2 on Cluster API Provider AWS machines" \
      org.opencontainers.image.source="https://github.com/capa-imds/capa-imds" \
      org.opencontainers.image.url="https://github.com/capa-imds/capa-imds" \
      org.opencontainers.image.documentation="https://github.com/capa-imds/capa-imds/blob/main/docs/integrations.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/capa-imds /capa-imds
USER 65532:65532
ENTRYPOINT ["/capa-imds"]
