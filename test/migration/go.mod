// Module migration checks deploy/Corefile against
// github.com/coredns/corefile-migration, the library with which kubeadm
// upgrade rewrites the coredns ConfigMap. It is a module of its own so that
// the plugin's module, which CoreDNS builds against, does not require it;
// make test runs it.
module github.com/headlessdns/headless/test/migration

go 1.26.0

require github.com/coredns/corefile-migration v1.0.36

require github.com/coredns/caddy v1.1.1 // indirect
