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

// controllerBinaries are the paths of the binaries of a cluster with
// controllers, and of kwok's stages.
type controllerBinaries struct {
	controllerManager, scheduler, kwok, kwokStages string
}

// ControllerBinaries returns the paths of the kube-controller-manager,
// kube-scheduler and kwok binaries in the cache folder, built like those of
// Binaries when they are missing: the first time, about 3 minutes, 30
// seconds and 2 minutes on 2 cores.
func ControllerBinaries() (controllerManager, scheduler, kwok string, err error) {
	b, err := controllerBins()
	return b.controllerManager, b.scheduler, b.kwok, err
}

func controllerBins() (controllerBinaries, error) {
	paths, err := bincache.Ensure(os.Stderr, bincache.Controllers...)
	if err != nil {
		return controllerBinaries{}, err
	}
	stages, err := bincache.ConfigPath(bincache.Kwok)
	return controllerBinaries{paths[0], paths[1], paths[2], stages}, err
}
