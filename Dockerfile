# The image of deploy/: CoreDNS v1.15.0 with every in-tree plugin plus
# headless, the ./coredns that `make coredns` builds, packed as CoreDNS's
# release Dockerfile packs its binary. It pulls no base image, so it builds
# where no container registry is reachable. `make image` stages its context in
# build/image (the binary, the netbindcap helper and the build host's CA
# bundle) and builds it with docker or podman:
#
#   make image IMAGE=registry.example.com/dns/coredns:v1.15.0-headless
#
# BASE is the final image's base, scratch by default. Where a registry is
# reachable, --build-arg BASE=gcr.io/distroless/static-debian12:nonroot (set
# IMAGE_FLAGS of make) puts it on distroless instead. Dockerfile.source builds
# the binary inside the build as well, from a Go image.

ARG BASE=scratch

# The file capability, set in a stage of its own as CoreDNS's release
# Dockerfile does with setcap: cap_net_bind_service=+ep lets user 65532 bind
# port 53 where the runtime gives the container NET_BIND_SERVICE (as deploy/
# asks) but no ambient capabilities (as Kubernetes runtimes do). netbindcap is
# static, so the stage needs no base image. It is set by a RUN step and the
# file copied from the stage, not set on the build host before COPY: BuildKit's
# COPY from the build context drops the security.capability attribute
# (moby/buildkit#2250), and COPY --from keeps it.
FROM scratch AS capability
COPY coredns netbindcap /
RUN ["/netbindcap", "/coredns"]

FROM ${BASE}
# For upstreams reached over TLS (forward tls://); the API server's CA comes
# from the service account's ca.crt.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=capability /coredns /coredns
# Numeric, so that Kubernetes can check runAsNonRoot: 65532 is distroless's
# nonroot, and the user of deploy/.
USER 65532:65532
WORKDIR /
EXPOSE 53 53/udp
ENTRYPOINT ["/coredns"]
