# capa-imds: see README.md. `make example` and `make test` are the two set-up commands.
GO      ?= go
BIN     := bin/capa-imds
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
IMAGE   ?= ghcr.io/capa-imds/capa-imds:$(VERSION)
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

.PHONY: conformance-tools build test example bench fuzz lint image release clean clients test-clients install image-local

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/capa-imds

# Unit, golden and end-to-end tests; the e2e tests build their own binary. Depends on
# conformance-tools (built once, about 15 minutes cold; nothing to do when bin/conformance/
# holds them), so the real API server tests run rather than skip on a fresh machine.
test: lint conformance-tools
	$(GO) test -race -count=1 ./...
	@# The conformance module (its own go.mod): real apiextensions-apiserver and CAPA code in
	@# process, and the real API server of conformance-tools; CAPA_IMDS_REQUIRE_APISERVER=1
	@# makes a missing binary fail the tests instead of skipping them (so does CI=true).
	@# No -race: it would multiply the API server tests' 2.5 minutes. -mod=mod:
	@# the module replaces the function with ../, so a dependency the function adds must
	@# reach conformance/go.sum without a separate step.
	cd conformance && $(GO) vet -mod=mod ./... && \
	  CAPA_IMDS_REQUIRE_APISERVER=1 $(GO) test -mod=mod -count=1 ./...

# etcd and kube-apiserver for conformance/ (envtest's KUBEBUILDER_ASSETS), built from the
# Go modules in conformance/tools/ into bin/conformance/ once: each is skipped when its
# binary exists (rm -r bin/conformance after bumping conformance/tools/*/go.mod). Cold
# build (empty GOCACHE), 2 cores, measured twice with other builds running on the machine:
# etcd 86-133 s, kube-apiserver 621-821 s, so 12.5-15 minutes; the modules download in 15 s.
# Compiling the conformance tests cold adds about 5 minutes to make test, running them 2.5.
CONFORMANCE_BIN := bin/conformance
conformance-tools: $(CONFORMANCE_BIN)/etcd $(CONFORMANCE_BIN)/kube-apiserver
$(CONFORMANCE_BIN)/etcd:
	cd conformance/tools/etcd && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(CURDIR)/$@ .
$(CONFORMANCE_BIN)/kube-apiserver:
	cd conformance/tools/kube-apiserver && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(CURDIR)/$@ .

# Runs the built function on the bundled example and prints the result.
example: build
	$(BIN) examples/standalone/imds.yaml examples/standalone/cluster.yaml

# End to end: capa-imds against two no-op kyaml functions (internal/noopfn) on synthetic
# fleets of 20 to 100,000 resources, and kustomize builds of 1,000 and 10,000 resources
# with the function against builtin patches; rewrites the generated section of
# BENCHMARKS.md. About 15 minutes on 2 cores, most of it kustomize at 10,000 resources.
# In-process benchmarks: go test -run '^$$' -bench . -benchmem ./transformers/ ./internal/resourcelist/
BENCHFLAGS ?=
bench: build
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/noopfn ./internal/noopfn
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/kustomize sigs.k8s.io/kustomize/kustomize/v5
	$(GO) run ./bench -fn $(BIN) -noop bin/noopfn -kustomize bin/kustomize -out BENCHMARKS.md $(BENCHFLAGS)

# Runs every fuzz target for FUZZTIME each (not in CI: plain go test runs the seeds).
# New crashers land in <package>/testdata/fuzz/<Target>/: commit them as regression seeds.
# Minimizing each new input for the default minute would eat the whole budget on inputs
# of a few kilobytes; a couple of seconds keeps the fuzzer fuzzing.
FUZZTIME ?= 30s
FUZZFLAGS ?= -fuzzminimizetime 2s
FUZZ = $(GO) test -run '^$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS)
fuzz:
	$(FUZZ) -fuzz '^FuzzResourceList$$' ./fn/
	$(FUZZ) -fuzz '^FuzzStandalone$$' ./fn/
	$(FUZZ) -fuzz '^FuzzLoadConfig$$' ./transformers/
	$(FUZZ) -fuzz '^FuzzEKSName$$' ./transformers/
	$(FUZZ) -fuzz '^FuzzPlainWord$$' ./transformers/
	$(FUZZ) -fuzz '^FuzzAliases$$' ./transformers/
	$(FUZZ) -fuzz '^FuzzWrite$$' ./internal/resourcelist/

# golangci-lint (.golangci.yml says which linters and why), pinned in its own module so its
# dependencies stay out of the function's go.mod; built once into bin/ (about 5 minutes cold
# on 2 cores, measured with an empty GOCACHE).
GOLANGCI := bin/golangci-lint
$(GOLANGCI): tools/golangci-lint/go.mod tools/golangci-lint/go.sum
	CGO_ENABLED=0 $(GO) -C tools/golangci-lint build -trimpath -o $(CURDIR)/$(GOLANGCI) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

lint: $(GOLANGCI)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI) run ./...

image:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

# The same image without a registry pull (the Dockerfile's bases need one): the static binary
# of `make build` in a scratch image with the user database kustomize and kpt need, built with
# podman from image/Containerfile. The examples name ghcr.io/capa-imds/capa-imds:v0.1.0:
#   make image-local IMAGE=ghcr.io/capa-imds/capa-imds:v0.1.0
PODMAN ?= podman
image-local: build
	rm -rf bin/image && mkdir -p bin/image
	cp $(BIN) image/Containerfile image/passwd image/group bin/image/
	$(PODMAN) build --build-arg VERSION=$(VERSION) -t $(IMAGE) bin/image

# capa-imds, and the same binary as clusterctl-imds: clusterctl runs clusterctl-<name> from
# PATH as `clusterctl <name>`, so `clusterctl imds CONFIG FILE...` works. Not
# clusterctl-capa-imds: clusterctl turns a dash inside a command word into an underscore.
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/capa-imds
	ln -sf capa-imds $(DESTDIR)$(PREFIX)/bin/clusterctl-imds

# A release is a tag vMAJOR.MINOR.PATCH: make release VERSION=v0.1.0. dist/ then holds what
# the GitHub release carries: capa-imds_<os>_<arch> and the same binary as
# clusterctl-imds_<os>_<arch>, the Helm 4 plugin (capa-imds-helm-plugin.tar.gz), SHA256SUMS,
# and krmfunction.yaml with each exec platform's sha256 filled in. The checked-in files name
# v0.1.0 (RELEASED): the copy in dist/ names VERSION.
RELEASED := v0.1.0
release:
	@echo "$(VERSION)" | grep -Eq '^v[0-9]+[.][0-9]+[.][0-9]+$$' || \
	  { echo "make release: VERSION=$(VERSION) is not a release tag vMAJOR.MINOR.PATCH"; exit 1; }
	rm -rf dist && mkdir -p dist
	for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
	    -o dist/capa-imds_$${os}_$${arch} ./cmd/capa-imds || exit 1; \
	  cp dist/capa-imds_$${os}_$${arch} dist/clusterctl-imds_$${os}_$${arch}; \
	done
	sed 's/^version: .*/version: $(patsubst v%,%,$(VERSION))/' helm-plugin/plugin.yaml > dist/plugin.yaml
	tar -C dist -czf dist/capa-imds-helm-plugin.tar.gz --transform 's,^,capa-imds/,' plugin.yaml && rm dist/plugin.yaml
	cd dist && sha256sum capa-imds_* clusterctl-imds_* capa-imds-helm-plugin.tar.gz > SHA256SUMS
	awk -v released='$(RELEASED)' -v version='$(VERSION)' \
	  'BEGIN { while ((getline l < "dist/SHA256SUMS") > 0) { split(l, f, " "); sum[f[2]] = f[1] } } \
	   { gsub(released, version) } \
	   /^ *uri: / { print; n = $$0; sub(/.*\//, "", n); match($$0, /^ */); \
	     if (!(n in sum)) { print "no sha256 for " n > "/dev/stderr"; exit 1 } \
	     print substr($$0, 1, RLENGTH) "sha256: " sum[n]; next } \
	   { print }' krmfunction.yaml > dist/krmfunction.yaml

# The real clients the documented flows run under, each built once from its pinned module in
# tools/ (or the main module, for kustomize) into bin/clients/: a binary that exists is not
# rebuilt (rm -rf bin/clients to rebuild). Cold on 2 cores: see docs/integrations.md.
CLIENTS := bin/clients
clients: $(CLIENTS)/helm3 $(CLIENTS)/helm4 $(CLIENTS)/clusterctl $(CLIENTS)/kustomize
$(CLIENTS)/helm3:
	cd tools/helm3 && v=$$($(GO) list -m -f '{{.Version}}' helm.sh/helm/v3) && \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$$v" \
	  -o $(abspath $@) helm.sh/helm/v3/cmd/helm
$(CLIENTS)/helm4:
	cd tools/helm4 && v=$$($(GO) list -m -f '{{.Version}}' helm.sh/helm/v4) && \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$$v" \
	  -o $(abspath $@) helm.sh/helm/v4/cmd/helm
$(CLIENTS)/clusterctl:
	cd tools/clusterctl && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(abspath $@) sigs.k8s.io/cluster-api/cmd/clusterctl
$(CLIENTS)/kustomize:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $@ sigs.k8s.io/kustomize/kustomize/v5

# Every documented client flow end to end (helm 3 and 4, clusterctl, kustomize, kpt and
# podman where installed), on the built binary and bin/clients/.
test-clients: build clients
	CAPA_IMDS_CLIENTS=$(abspath $(CLIENTS)) $(GO) test -count=1 -v -run '^TestClients' ./tests/

clean:
	rm -rf bin dist
