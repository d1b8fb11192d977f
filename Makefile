# Builds a CoreDNS binary with every in-tree plugin plus headless, from the
# CoreDNS module in the Go module cache and this checkout's plugin.cfg.

COREDNS_VERSION := $(shell go list -m -f '{{.Version}}' github.com/coredns/coredns)
COREDNS_DIR = $(shell go mod download -json github.com/coredns/coredns@$(COREDNS_VERSION) | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
BUILD := build/coredns-$(COREDNS_VERSION)
GOTAGS ?= grpcnotrace
SOURCES := $(wildcard *.go) go.mod go.sum plugin.cfg

.PHONY: all
all: coredns

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
	cd $(BUILD) && CGO_ENABLED=0 go build -tags="$(GOTAGS)" -ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=headless" -o $(CURDIR)/coredns .

# kube-apiserver and etcd for the end-to-end tests, built once into a cache.
.PHONY: tools
tools:
	go run ./test/cluster/cmd/buildtools

# Unit tests, then the end-to-end packages one at a time: each starts its own
# control plane and CoreDNS, and their waits are bounded.
.PHONY: test
test: coredns tools
	go vet ./...
	go test -race -count=1 -p 1 ./...
	@cat build/conformance.txt 2>/dev/null || true

# Go benchmarks beside the kubernetes plugin, then the dnsperf run; writes
# BENCHMARKS.md and BENCHMARKS.svg. BENCH_FLAGS=-large=100000 adds the 1M
# endpoint workload for memory and start time (about 15 more minutes).
.PHONY: bench
bench: coredns tools
	mkdir -p build
	go test -run '^$$' -bench . -benchmem -count 1 . | grep -E '^(Benchmark|goos|goarch|cpu)' > build/gobench.txt
	go run ./test/bench -gobench build/gobench.txt $(BENCH_FLAGS)

# The local control plane with the seed objects and CoreDNS on
# Corefile.example, until Ctrl-C.
.PHONY: demo
demo: coredns tools
	go run ./test/demo

.PHONY: clean
clean:
	rm -rf build coredns

# The container image of the Dockerfile; needs a Docker engine, which this
# repository's machines do not run (docs/operators.md).
IMAGE ?= headlessdns/coredns:$(COREDNS_VERSION)-headless

.PHONY: image
image:
	@if ! docker info >/dev/null 2>&1; then \
		echo "make image: no Docker engine is available here (docker info failed)." >&2; \
		echo "Build the image where one runs: docker build -t $(IMAGE) ." >&2; \
		exit 1; \
	fi
	docker build -t $(IMAGE) .
