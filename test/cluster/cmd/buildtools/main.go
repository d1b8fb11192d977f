// Command buildtools builds, if they are not cached yet, the etcd,
// kube-apiserver and kubectl binaries that the end-to-end tests and the demo
// run, and kube-controller-manager, kube-scheduler and kwok for their
// clusters with controllers, saying what it builds while it builds, and prints their paths with -v.
// It imports only the standard library and bincache, so that it starts at
// once on a first run.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/headlessdns/headless/test/cluster/internal/bincache"
)

func main() {
	verbose := flag.Bool("v", false, "print the paths of the binaries")
	flag.Parse()
	tools := append([]bincache.Tool{bincache.Etcd, bincache.APIServer, bincache.Kubectl}, bincache.Controllers...)
	paths, err := bincache.Ensure(os.Stdout, tools...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildtools:", err)
		os.Exit(1)
	}
	if *verbose {
		for _, p := range paths {
			fmt.Println(p)
		}
	}
}
