// Command buildtools builds, if they are not cached yet, the etcd,
// kube-apiserver and kubectl binaries the end-to-end tests run, and prints
// their paths.
package main

import (
	"fmt"
	"os"

	"github.com/headlessdns/headless/test/cluster"
)

func main() {
	etcd, apiserver, err := cluster.Binaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kubectl, err := cluster.Kubectl()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(etcd)
	fmt.Println(apiserver)
	fmt.Println(kubectl)
}
