package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
)

// kubectl runs the kubectl binary against one cluster.
type kubectl struct {
	bin, kubeconfig, cacheDir string
}

// run runs kubectl with args and stdin, and returns its standard output, or
// an error with both outputs. A run is bounded to a minute.
func (k *kubectl) run(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)
	cmd := exec.CommandContext(ctx, k.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kubectl %s: %v\n%s%s", strings.Join(args[4:], " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}

// replaceOnce replaces old, which must occur exactly once in the Corefile cf,
// with new; it fails the test when the Corefile no longer has old.
func replaceOnce(t *testing.T, cf, old, new string) string {
	t.Helper()
	if n := strings.Count(cf, old); n != 1 {
		t.Fatalf("rewriting the Corefile: %q occurs %d times, want once, in\n%s", old, n, cf)
	}
	return strings.Replace(cf, old, new, 1)
}

// ttl returns the ttl option of the block of plugin in the Corefile cf, or
// "5", the default of both headless and kubernetes, when it has none.
func ttl(t *testing.T, cf, plugin string) string {
	t.Helper()
	var in, found bool
	value := "5"
	for _, line := range strings.Split(cf, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == plugin && f[len(f)-1] == "{":
			in, found = true, true
		case in && len(f) == 1 && f[0] == "}":
			in = false
		case in && len(f) == 2 && f[0] == "ttl":
			value = f[1]
		}
	}
	if !found {
		t.Fatalf("no %s block in the Corefile:\n%s", plugin, cf)
	}
	return value
}

// addresses returns the sorted addresses of the A records of r's answer.
func addresses(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

// startCluster starts a control plane for a test of deploy/, stopped when
// the test ends, and returns it, a kubectl for it and the deploy folder.
func startCluster(ctx context.Context, t *testing.T) (*cluster.Cluster, *kubectl, string) {
	t.Helper()
	root, err := testkit.Root()
	if err != nil {
		t.Fatal(err)
	}
	kubectlBin, err := cluster.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c, &kubectl{bin: kubectlBin, kubeconfig: c.Kubeconfig, cacheDir: t.TempDir()}, filepath.Join(root, "deploy")
}
