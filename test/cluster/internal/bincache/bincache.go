// Package bincache builds the binaries that the end-to-end tests and the demo
// run, etcd, kube-apiserver, kubectl, and for a cluster with controllers
// kube-controller-manager, kube-scheduler and kwok, from the modules in
// test/tools into a cache folder, once, saying what it builds while it
// builds. It needs only the standard library, so that cmd/buildtools starts
// at once on a first run.
package bincache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/headlessdns/headless/internal/progress"
)

// Tool is a binary built from a package of a module in test/tools.
type Tool struct {
	Name, Package string
	// Estimate is how long its build takes on 2 cores the first time, for
	// the messages.
	Estimate string
	// Module is the folder of the module, under test/tools, that pins
	// the versions it is built with: "" for test/tools itself.
	Module string
	// Config lists files of the module that provides Package, joined as
	// YAML documents into NAME.yaml beside the binary when it is built:
	// kwok's stages, which its module holds but not its binary.
	Config []string
}

// The tools, in the order of a first run, each estimate counting on the
// packages that the ones before it left in the build cache. On a fresh clone
// with empty Go caches on 2 cores, after ./coredns, etcd took 1m22s,
// kube-apiserver 9m29s and kubectl 1m0s. After those, on the same machine
// shared with other builds, kube-controller-manager took CTLMGR,
// kube-scheduler SCHED and kwok, a module of its own, KWOK.
var (
	Etcd      = Tool{Name: "etcd", Package: "go.etcd.io/etcd/server/v3", Estimate: "about 2 minutes"}
	APIServer = Tool{Name: "kube-apiserver", Package: "k8s.io/kubernetes/cmd/kube-apiserver", Estimate: "about 10 minutes"}
	Kubectl   = Tool{Name: "kubectl", Package: "k8s.io/kubernetes/cmd/kubectl", Estimate: "about 1 minute"}

	ControllerManager = Tool{Name: "kube-controller-manager", Package: "k8s.io/kubernetes/cmd/kube-controller-manager", Estimate: "about 3 minutes"}
	Scheduler         = Tool{Name: "kube-scheduler", Package: "k8s.io/kubernetes/cmd/kube-scheduler", Estimate: "about 30 seconds"}
	// Kwok runs the pods of fake nodes; kwok.yaml holds the stages it
	// plays: nodes become Ready and keep a heartbeat, pods become Ready
	// with an address, finish when they are a Job's, and go when deleted.
	Kwok = Tool{Name: "kwok", Package: "sigs.k8s.io/kwok/cmd/kwok", Estimate: "about 2 minutes", Module: "kwok", Config: []string{
		"kustomize/stage/node/fast/node-initialize.yaml",
		"kustomize/stage/node/heartbeat/node-heartbeat.yaml",
		"kustomize/stage/pod/fast/pod-ready.yaml",
		"kustomize/stage/pod/fast/pod-complete.yaml",
		"kustomize/stage/pod/fast/pod-delete.yaml",
	}}
)

// Controllers are the tools of a cluster with controllers and fake nodes.
var Controllers = []Tool{ControllerManager, Scheduler, Kwok}

// ConfigPath returns the path of the file of t's Config in the cache folder.
func ConfigPath(t Tool) (string, error) {
	dir, err := Dir()
	return filepath.Join(dir, t.Name+".yaml"), err
}

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
	if len(missingBinaries(dir, todo)) > 0 {
		fmt.Fprintf(w, "Building %s into %s, once (HEADLESS_CACHE moves the folder).\n", strings.Join(names, ", "), dir)
	}
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
		if !isFile(filepath.Join(dir, t.Name)) || len(t.Config) > 0 && !isFile(filepath.Join(dir, t.Name+".yaml")) {
			m = append(m, t)
		}
	}
	return m
}

// missingBinaries returns the tools whose binary is not in dir.
func missingBinaries(dir string, tools []Tool) []Tool {
	var m []Tool
	for _, t := range tools {
		if !isFile(filepath.Join(dir, t.Name)) {
			m = append(m, t)
		}
	}
	return m
}

// build builds t from its module under src into dir, and writes its
// Config.
func build(w io.Writer, src, dir string, t Tool) error {
	src = filepath.Join(src, t.Module)
	if len(t.Config) > 0 {
		if err := writeConfig(src, dir, t); err != nil {
			return err
		}
	}
	if isFile(filepath.Join(dir, t.Name)) {
		return nil
	}
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

// writeConfig joins the files of t.Config, in the module that provides
// t.Package as the module in src requires it, into NAME.yaml in dir.
func writeConfig(src, dir string, t Tool) error {
	cmd := exec.Command("go", "list", "-f", "{{.Module.Dir}}", t.Package)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return fmt.Errorf("go list %s in %s: %w", t.Package, src, err)
	}
	mod := strings.TrimSpace(string(out))
	var docs []string
	for _, f := range t.Config {
		b, err := os.ReadFile(filepath.Join(mod, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		docs = append(docs, "# "+f+"\n"+strings.TrimSpace(string(b))+"\n")
	}
	tmp := filepath.Join(dir, t.Name+".yaml.tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, t.Name+".yaml"))
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
