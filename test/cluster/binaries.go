package cluster

import (
	"os"

	"github.com/headlessdns/headless/test/cluster/internal/bincache"
)

// Binaries returns the paths of the etcd and kube-apiserver binaries in the
// cache folder, $HEADLESS_CACHE/bin (by default the headless/bin folder of the
// user's cache directory). A missing binary is built from the module in
// test/tools, which takes minutes for kube-apiserver; the build says on
// stderr what it builds, how long that takes, and every 30s that it is still
// at it. See bincache.Ensure.
func Binaries() (etcd, apiserver string, err error) {
	paths, err := bincache.Ensure(os.Stderr, bincache.Etcd, bincache.APIServer)
	if err != nil {
		return "", "", err
	}
	return paths[0], paths[1], nil
}

// Kubectl returns the path of the kubectl binary in the cache folder, built
// like the binaries of Binaries, from the same module, when it is missing.
func Kubectl() (string, error) {
	paths, err := bincache.Ensure(os.Stderr, bincache.Kubectl)
	if err != nil {
		return "", err
	}
	return paths[0], nil
}
