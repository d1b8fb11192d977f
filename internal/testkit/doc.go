// Package testkit is what every test of the repository stands on, as
// CoreDNS's test/ package stands on its server helpers: the objects
// (Consul, Headless, Slice, Endpoint, Apply, ...), the workloads that a
// control plane with controllers turns into pods and slices (ConsulServer,
// StatefulSet, Deployment, WaitForEndpoints), a Corefile of server
// blocks (Block), the CoreDNS binary and the server it runs (Binary, Start),
// the child-process runner the control plane of test/cluster uses too
// (StartProcess), DNS questions (NewQuery, Exchange, Query, Records),
// waiting (Eventually), free ports (FreePort) and what a process costs (RSS).
//
// Child processes run on Unix, in process groups of their own; on Linux the
// kernel also kills them when the test process dies. RSS and TCPConns read
// /proc, on Linux only. Elsewhere these return errors that wrap
// errors.ErrUnsupported, on which Require skips a test.
package testkit
