# CoreDNS v1.15.0 with every in-tree plugin plus headless, as `make coredns`
# builds it, on a distroless base that runs as a numeric non-root user.
#
#   docker build -t registry.example.com/dns/coredns:v1.15.0-headless .
#
# The build stage fetches the CoreDNS module and its dependencies from the Go
# module proxy (GOPROXY, by default proxy.golang.org). See docs/operators.md:
# no Docker engine runs on this repository's machines, so this file is not
# built by its CI.

ARG GO_IMAGE=golang:1.26
ARG BASE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get -qq update \
    && apt-get -qq --no-install-recommends install libcap2-bin make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The module graph first, so that changing a source file does not download
# it again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The file capability lets the non-root user bind port 53 where the runtime
# puts NET_BIND_SERVICE in the container's permitted set; deploy/ also sets
# net.ipv4.ip_unprivileged_port_start, which needs no capability at all.
RUN make coredns \
    && setcap cap_net_bind_service=+ep coredns \
    && ./coredns -version

FROM ${BASE}
COPY --from=build /src/coredns /coredns
# Numeric, so that Kubernetes can check runAsNonRoot: 65532 is distroless's
# nonroot. The base image carries the CA certificates.
USER 65532:65532
WORKDIR /
EXPOSE 53 53/udp
ENTRYPOINT ["/coredns"]
