# Builds a CoreDNS binary with every in-tree plugin plus headless, from the
# CoreDNS module in the Go module cache and this checkout's plugin.cfg.

COREDNS_VERSION := $(shell go list -m -f '{{.Version}}' github.com/coredns/coredns)
COREDNS_DIR = $(shell go mod download -json github.com/coredns/coredns@$(COREDNS_VERSION) | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
BUILD := build/coredns-$(COREDNS_VERSION)
GOTAGS ?= grpcnotrace
SOURCES := $(wildcard *.go) go.mod go.sum plugin.cfg

.PHONY: all
all: coredns

# Runs a long build or check, saying what it does and, every 30s, that it is
# still at it (internal/cmd/progress).
PROGRESS = go run ./internal/cmd/progress

# The CoreDNS source tree, writable, with our plugin.cfg and the plugin module
# replaced by this checkout.
$(BUILD)/.prepared: plugin.cfg go.mod
	rm -rf $(BUILD)
	mkdir -p build
	cp -r $(COREDNS_DIR) $(BUILD)
	chmod -R u+w $(BUILD)
	cp plugin.cfg $(BUILD)/plugin.cfg
	cd $(BUILD) && go mod edit -require=github.com/headlessdns/headless@v0.0.0 -replace=github.com/headlessdns/headless=../..
	cd $(BUILD) && go generate coredns.go && go mod tidy
	touch $@

coredns: $(BUILD)/.prepared $(SOURCES)
	@CGO_ENABLED=0 $(PROGRESS) -what ./coredns -estimate "about 5 minutes" -- \
		go build -C $(BUILD) -tags="$(GOTAGS)" -ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=headless" -o $(CURDIR)/coredns .

# etcd, kube-apiserver and kubectl for the end-to-end tests and the demo,
# and kube-controller-manager, kube-scheduler and kwok for their control
# planes with controllers and fake nodes, built once into
# ~/.cache/headless/bin (HEADLESS_CACHE moves it); it says what it builds and
# how long that takes, and nothing when all are there.
.PHONY: tools
tools:
	@go run ./test/cluster/cmd/buildtools

# Unit tests, then the end-to-end packages one at a time: each starts its own
# control plane and CoreDNS, and their waits are bounded. test/migration is a
# module of its own, which ./... does not reach: it runs first, in a second.
.PHONY: test
test: coredns tools
	@$(PROGRESS) -- go vet ./...
	@go vet -C test/migration ./...
	@go test -C test/migration -race -count=1 ./...
	@go test -race -count=1 -p 1 -timeout 30m ./...
	@cat build/conformance.txt 2>/dev/null || true

# Go benchmarks beside the kubernetes plugin, then test/bench: headless
# against kubernetes on headless services only, the production shape
# (deploy/Corefile with and without headless on a cluster mix of 20000
# services, one in ten headless), big services (one of 10000 and one of
# 50000 endpoints whose slices change, each plugin alone), controllers
# (stock and drop-in in each shape while the real controllers start a
# StatefulSet of 1000 pods all at once and roll it, simulated peers asking
# for every pod's name) and the largest clusters (a training job of 65000
# pods started at once, and 1000000 endpoints in 100000 services, each
# plugin alone), each on a control plane of its own; writes BENCHMARKS.md
# and BENCHMARKS.svg. `go run ./test/bench -only largest -out FILE` runs one
# part; go run ./test/bench -h lists the sizes.
.PHONY: bench
bench: coredns tools
	mkdir -p build
	go test -run '^$$' -bench . -benchmem -count 1 . | grep -E '^(Benchmark|goos|goarch|cpu)' > build/gobench.txt
	go run ./test/bench -gobench build/gobench.txt $(BENCH_FLAGS)

# The local control plane with controllers and fake nodes, the seed's
# consul-server Service and StatefulSet, and CoreDNS on Corefile.example,
# until Ctrl-C. The demo runs as a binary of its own, not
# with go run, and takes the terminal, so that Ctrl-C stops it alone and make
# exits with status 0. Built without cgo, as ./coredns is, it reuses the
# packages of that build.
.PHONY: demo
demo: coredns tools
	@CGO_ENABLED=0 $(PROGRESS) -what build/demo -estimate "under a minute" -- go build -o build/demo ./test/demo
	@./build/demo

.PHONY: clean
clean:
	rm -rf build coredns

# The container image of Dockerfile, from ./coredns: built with docker where a
# Docker engine answers, else with podman, and pulling no base image. The
# context is build/image, which holds only what the image is made of.
IMAGE ?= headlessdns/coredns:$(COREDNS_VERSION)-headless
ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
# Copied into the image for upstreams reached over TLS; Debian's
# ca-certificates, or any PEM bundle.
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
# More flags of `build`, such as --build-arg BASE=... (Dockerfile).
IMAGE_FLAGS ?=
# Podman runs the RUN step of Dockerfile with crun where crun is installed,
# and crun refuses the hybrid cgroup layout of this repository's machines:
# runc, where installed, runs it.
ENGINE_FLAGS ?= $(if $(filter podman,$(ENGINE)),$(if $(shell command -v runc),--runtime runc))

.PHONY: image
image: coredns
	@command -v $(ENGINE) >/dev/null || { echo "make image: no $(ENGINE): no Docker engine answers docker info and podman is not installed (ENGINE= names another engine)." >&2; exit 1; }
	rm -rf build/image
	mkdir -p build/image
	cp coredns build/image/coredns
	cp $(CA_BUNDLE) build/image/ca-certificates.crt
	CGO_ENABLED=0 go build -trimpath -ldflags=-s -o build/image/netbindcap ./image/netbindcap
	$(ENGINE) build $(ENGINE_FLAGS) $(IMAGE_FLAGS) -f Dockerfile -t $(IMAGE) build/image
