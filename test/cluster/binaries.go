package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// tool is a control-plane binary and the package of the tools module it is
// built from.
type tool struct {
	name, pkg string
}

var (
	etcdTool      = tool{"etcd", "go.etcd.io/etcd/server/v3"}
	apiserverTool = tool{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"}
	kubectlTool   = tool{"kubectl", "k8s.io/kubernetes/cmd/kubectl"}
)

// Binaries returns the paths of the etcd and kube-apiserver binaries in the
// cache folder, $HEADLESS_CACHE/bin (by default the headless/bin folder of the
// user's cache directory). A missing binary is built from the module in
// test/tools, which takes minutes for kube-apiserver. A lock file serializes
// the builds of concurrent processes, and a binary is renamed into place only
// once complete, so an interrupted build leaves nothing behind.
func Binaries() (etcd, apiserver string, err error) {
	dir, err := binDir()
	if err != nil {
		return "", "", err
	}
	etcd, apiserver = filepath.Join(dir, etcdTool.name), filepath.Join(dir, apiserverTool.name)
	if isFile(etcd) && isFile(apiserver) {
		return etcd, apiserver, nil
	}
	unlock, err := lock(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", "", err
	}
	defer unlock()
	for _, t := range []tool{etcdTool, apiserverTool} {
		if err := ensure(dir, t); err != nil {
			return "", "", err
		}
	}
	return etcd, apiserver, nil
}

// Kubectl returns the path of the kubectl binary in the cache folder, built
// like the binaries of Binaries, from the same module, when it is missing.
func Kubectl() (string, error) {
	dir, err := binDir()
	if err != nil {
		return "", err
	}
	kubectl := filepath.Join(dir, kubectlTool.name)
	if isFile(kubectl) {
		return kubectl, nil
	}
	unlock, err := lock(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := ensure(dir, kubectlTool); err != nil {
		return "", err
	}
	return kubectl, nil
}

// binDir returns, and creates, the folder the binaries are cached in.
func binDir() (string, error) {
	base := os.Getenv("HEADLESS_CACHE")
	if base == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory, set HEADLESS_CACHE: %w", err)
		}
		base = filepath.Join(cache, "headless")
	}
	dir := filepath.Join(base, "bin")
	return dir, os.MkdirAll(dir, 0o755)
}

// ensure builds t into dir unless it is there already.
func ensure(dir string, t tool) error {
	dst := filepath.Join(dir, t.name)
	if isFile(dst) {
		return nil
	}
	src, err := toolsDir()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, t.name+".tmp-*")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // a no-op once renamed

	if err := goBuild(src, t.pkg, tmp.Name()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// goBuild runs go build -o out pkg in the module directory src.
func goBuild(src, pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, src, err, buf.Bytes())
	}
	return nil
}

// toolsDir finds the test/tools module: next to this source file when it is
// known, else above the working directory.
func toolsDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "tools")
		if isFile(filepath.Join(dir, "go.mod")) {
			return filepath.Clean(dir), nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		tools := filepath.Join(dir, "test", "tools")
		if isFile(filepath.Join(tools, "go.mod")) {
			return tools, nil
		}
		if dir == filepath.Dir(dir) {
			return "", errors.New("test/tools/go.mod not found above " + wd)
		}
	}
}

// isFile reports whether path is a regular file.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
