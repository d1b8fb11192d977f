// Package migration checks what kubeadm upgrade does to deploy/Corefile.
// kubeadm rewrites the coredns ConfigMap with
// github.com/coredns/corefile-migration: it keeps a plugin that the library
// does not know, as it is and where it is, and says so in a notice for each
// version it migrates through. Its tests read files only.
package migration

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/corefile-migration/migration"
	"github.com/coredns/corefile-migration/migration/corefile"
)

// oldest is the first CoreDNS version migrated from.
const oldest = "1.11.0"

// kubeadmCoreDNS is the CoreDNS version that kubeadm v1.37.2 installs and
// upgrades to (CoreDNSVersion in cmd/kubeadm/app/constants), the kubeadm of
// the kube-apiserver that test/tools builds.
const kubeadmCoreDNS = "1.14.6"

// TestMigrateKeepsHeadless migrates deploy/Corefile from each CoreDNS version
// the library knows, from oldest on, to the version in go.mod, as kubeadm
// does (deprecated plugins are migrated only once they are removed), and
// checks that the headless block comes out as it went in, right before
// kubernetes, that nothing else changes but the layout, and which notices
// the library gives.
func TestMigrateKeepsHeadless(t *testing.T) {
	text := read(t, "deploy", "Corefile")
	to := corednsVersion(t)
	want := parse(t, text)
	block := headless(t, "deploy/Corefile", want)
	if len(block.Options) == 0 {
		t.Fatalf("deploy/Corefile: the headless block has no options:\n%s", text)
	}
	for _, from := range since(t, oldest, to) {
		t.Run(from, func(t *testing.T) {
			got, err := migration.Migrate(from, to, text, false)
			if err != nil {
				t.Fatalf("Migrate(%s, %s): %v", from, to, err)
			}
			if b := headless(t, "migrated from "+from, parse(t, got)); !reflect.DeepEqual(b, block) {
				t.Errorf("migrated from %s, the headless block is\n%s\nwant\n%s", from, b.ToString(), block.ToString())
			}
			// The library prints the Corefile anew, with its own
			// indentation: compare with deploy/Corefile printed the same.
			if got != want.ToString() {
				t.Errorf("migrated from %s, the Corefile is\n%s\nwant deploy/Corefile unchanged:\n%s", from, got, want.ToString())
			}

			deprecated, err := migration.Deprecated(from, to, text)
			if err != nil {
				t.Fatal(err)
			}
			if n := notices(deprecated); len(n) > 0 {
				t.Errorf("Deprecated(%s, %s):\n%s\nwant none", from, to, strings.Join(n, "\n"))
			}
			// One notice for each version after from, up to to: kubeadm
			// prints them and stops its preflight checks unless
			// CoreDNSUnsupportedPlugins is ignored.
			var wantNotices []string
			for _, v := range since(t, from, to)[1:] {
				wantNotices = append(wantNotices, `Plugin "headless" is unsupported by this migration tool in `+v+".")
			}
			wantNotices = append(wantNotices, `Plugin "headless" is unsupported by this migration tool in `+to+".")
			unsupported, err := migration.Unsupported(from, to, text)
			if err != nil {
				t.Fatal(err)
			}
			if n := notices(unsupported); !slices.Equal(n, wantNotices) {
				t.Errorf("Unsupported(%s, %s):\n%s\nwant\n%s", from, to, strings.Join(n, "\n"), strings.Join(wantNotices, "\n"))
			}
		})
	}
}

// TestKubeadmUpgrade checks what docs/operators.md says kubeadm v1.37 does
// with deploy/Corefile and the image of make image.
func TestKubeadmUpgrade(t *testing.T) {
	text := read(t, "deploy", "Corefile")
	to := corednsVersion(t)

	// kubeadm replaces a Corefile with its own default only when it is the
	// default of a Kubernetes release; deploy/Corefile is not.
	if migration.Default("", text) {
		t.Error("deploy/Corefile is the default Corefile of a Kubernetes release: kubeadm would replace it")
	}

	// kubeadm takes the installed CoreDNS version from the tag of the
	// Deployment's image, less a leading v. The tag of make image is not a
	// version the library knows: the preflight checks and the addon/coredns
	// phase stop on it.
	tag := strings.TrimPrefix(imageTag(t), "v")
	for name, check := range map[string]func() error{
		"Unsupported": func() error { _, err := migration.Unsupported(tag, kubeadmCoreDNS, text); return err },
		"Migrate":     func() error { _, err := migration.Migrate(tag, kubeadmCoreDNS, text, false); return err },
		"Deprecated":  func() error { _, err := migration.Deprecated(tag, kubeadmCoreDNS, text); return err },
	} {
		want := "start version '" + tag + "' not supported"
		if err := check(); err == nil || err.Error() != want {
			t.Errorf("%s(%s, %s): error %v, want %q", name, tag, kubeadmCoreDNS, err, want)
		}
	}

	// Tagged with the bare version of go.mod, the image is newer than what
	// kubeadm v1.37 upgrades to, and the library migrates only up. (The
	// library that kubeadm v1.37.2 is built with, v1.0.34, does not know
	// 1.15.0 at all: start version '1.15.0' not supported.)
	want := "cannot migrate up to '" + kubeadmCoreDNS + "' from '" + to + "'"
	if _, err := migration.Migrate(to, kubeadmCoreDNS, text, false); err == nil || err.Error() != want {
		t.Errorf("Migrate(%s, %s): error %v, want %q", to, kubeadmCoreDNS, err, want)
	}
}

// since returns the versions that the library knows from from up to to,
// without to. It fails the test if the library does not know both.
func since(t *testing.T, from, to string) []string {
	t.Helper()
	all := migration.ValidVersions()
	i, j := slices.Index(all, from), slices.Index(all, to)
	if i < 0 || j < 0 || i >= j {
		t.Fatalf("corefile-migration knows the CoreDNS versions %v; it must know %s and %s, the version of go.mod, "+
			"and %s must come first: update the library (go get github.com/coredns/corefile-migration@latest in test/migration)",
			all, from, to, from)
	}
	return all[i:j]
}

// headless returns the headless plugin of the server block .:53 of cf and
// fails the test unless it is there once, right before kubernetes.
func headless(t *testing.T, what string, cf *corefile.Corefile) *corefile.Plugin {
	t.Helper()
	for _, s := range cf.Servers {
		if !slices.Equal(s.DomPorts, []string{".:53"}) {
			continue
		}
		var names []string
		for _, p := range s.Plugins {
			names = append(names, p.Name)
		}
		i := slices.Index(names, "headless")
		if i < 0 || slices.Index(names[i+1:], "headless") >= 0 || i+1 == len(names) || names[i+1] != "kubernetes" {
			t.Fatalf("%s: the plugins of .:53 are %v, want headless once, right before kubernetes", what, names)
		}
		return s.Plugins[i]
	}
	t.Fatalf("%s: no server block .:53", what)
	return nil
}

// parse parses a Corefile as the library does.
func parse(t *testing.T, text string) *corefile.Corefile {
	t.Helper()
	cf, err := corefile.New(text)
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// notices returns the notices as kubeadm prints them.
func notices(ns []migration.Notice) []string {
	var s []string
	for _, n := range ns {
		s = append(s, n.ToString())
	}
	return s
}

// read returns a file of the repository, named from its root.
func read(t *testing.T, name ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"..", ".."}, name...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// corednsVersion returns the version of CoreDNS that the plugin's module
// requires, without the leading v.
func corednsVersion(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*github\.com/coredns/coredns v(\d+\.\d+\.\d+)\s*$`).FindStringSubmatch(read(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod requires no github.com/coredns/coredns vX.Y.Z")
	}
	return m[1]
}

// imageTag returns the tag of the image that make image builds by default
// (IMAGE in the Makefile), with go.mod's CoreDNS version in place of
// $(COREDNS_VERSION).
func imageTag(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^IMAGE \?= [^:\s]+:(\S+)$`).FindStringSubmatch(read(t, "Makefile"))
	if m == nil {
		t.Fatal("the Makefile sets no IMAGE ?= NAME:TAG")
	}
	return strings.ReplaceAll(m[1], "$(COREDNS_VERSION)", "v"+corednsVersion(t))
}
