// Package bincache builds the binaries that the end-to-end tests and the demo
// run, etcd, kube-apiserver and kubectl, from the module in test/tools into a
// cache folder, once, saying what it builds while it builds. It needs only
// the standard library, so that cmd/buildtools starts at once on a first run.
package bincache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/headlessdns/headless/internal/progress"
)

// Tool is a binary built from a package of the test/tools module.
type Tool struct {
	Name, Package string
	// Estimate is how long its build takes on 2 cores the first time, for
	// the messages.
	Estimate string
}

// The tools, in the order of a first run, each estimate counting on the
// packages that the ones before it left in the build cache. On a fresh clone
// with empty Go caches on 2 cores, after ./coredns, etcd took 1m22s,
// kube-apiserver 9m29s and kubectl 1m0s.
var (
	Etcd      = Tool{"etcd", "go.etcd.io/etcd/server/v3", "about 2 minutes"}
	APIServer = Tool{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", "about 10 minutes"}
	Kubectl   = Tool{"kubectl", "k8s.io/kubernetes/cmd/kubectl", "about 1 minute"}
)

// Ensure returns the paths of tools in the cache folder (see Dir), building
// the missing ones and writing to w what it builds and that it is still at
// it; it writes nothing when all are there. A lock file serializes the
// builds of concurrent processes, and a binary is renamed into place only
// once complete, so an interrupted build leaves nothing behind.
func Ensure(w io.Writer, tools ...Tool) ([]string, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, t := range tools {
		paths = append(paths, filepath.Join(dir, t.Name))
	}
	if len(missing(dir, tools)) == 0 {
		return paths, nil
	}
	unlock, err := lock(filepath.Join(dir, ".lock"), func(take func() error) error {
		fmt.Fprintf(w, "Waiting for another process that builds into %s.\n", dir)
		return progress.While(w, "waiting for the other build", take)
	})
	if err != nil {
		return nil, err
	}
	defer unlock()
	todo := missing(dir, tools)
	if len(todo) == 0 {
		return paths, nil
	}
	var names []string
	for _, t := range todo {
		names = append(names, t.Name)
	}
	fmt.Fprintf(w, "Building %s into %s, once (HEADLESS_CACHE moves the folder).\n", strings.Join(names, ", "), dir)
	src, err := toolsDir()
	if err != nil {
		return nil, err
	}
	for _, t := range todo {
		if err := build(w, src, dir, t); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// Dir returns, and creates, the folder the binaries are cached in:
// $HEADLESS_CACHE/bin, by default the headless/bin folder of the user's
// cache directory.
func Dir() (string, error) {
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

// missing returns the tools that are not in dir.
func missing(dir string, tools []Tool) []Tool {
	var m []Tool
	for _, t := range tools {
		if !isFile(filepath.Join(dir, t.Name)) {
			m = append(m, t)
		}
	}
	return m
}

// build builds t from the module in src into dir.
func build(w io.Writer, src, dir string, t Tool) error {
	tmp, err := os.CreateTemp(dir, t.Name+".tmp-*")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // a no-op once renamed

	if err := progress.GoBuild(w, t.Name, t.Estimate, src, []string{"GOWORK=off"}, "-o", tmp.Name(), t.Package); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, t.Name))
}

// toolsDir finds the test/tools module: relative to this source file when it
// is known, else above the working directory.
func toolsDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "tools")
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
