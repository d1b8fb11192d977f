package deploy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	authn "k8s.io/api/authentication/v1"
	core "k8s.io/api/core/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The service account credentials of a pod, where client-go's in-cluster
// configuration reads them, and the name in the API server's certificate
// that the container reaches it by.
const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	apiServerName     = "kubernetes.default.svc"
	capNetBindService = 1 << 10 // in /proc/PID/status masks
)

// TestImage builds the image with `make image` and runs it as the
// Deployment of deploy/ runs it: the user, read-only root filesystem,
// capabilities, no_new_privs, arguments, ports and ConfigMap mount are read
// from the applied Deployment, the Corefile is the applied ConfigMap's,
// unchanged, and the image reaches the local API server with client-go's
// in-cluster configuration, as the coredns ServiceAccount. It checks that the
// image serves the seed objects over UDP and TCP on port 53, that /ready and
// /health answer, and that SIGTERM stops it cleanly, answering through its
// lameduck.
//
// The container has a network namespace of its own, so port 53 is its own
// port 53, which the engine publishes on a loopback port of the host, as a
// Service would route to it. The API server listens on the host's loopback
// only, which a container's namespace does not reach: under podman the
// container's network is slirp4netns with allow_host_loopback, which maps
// 10.0.2.2 to the host's loopback; under docker, a relay of this test on the
// docker bridge's host address forwards to the API server.
//
// Port 53 without root: deploy/ sets net.ipv4.ip_unprivileged_port_start=53,
// which lets any process bind it. The test sets it to the kernel's default,
// 1024, instead (docker sets 0 by default), so that the image's own file
// capability must do it, as on a cluster without the sysctl. Podman gives a
// non-root container's process the added capabilities as ambient ones too,
// which would bind port 53 without the file capability; Kubernetes runtimes
// (containerd, CRI-O) give none, and under podman the test runs the container
// through a wrapper of runc that clears the ambient and inheritable sets as
// they do. The test checks the process's capabilities.
//
// Without docker or podman the test skips, except under CI (CI set), where
// .ci/run installs podman.
func TestImage(t *testing.T) {
	e := containerEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c, k, dir := startCluster(ctx, t)
	if err := c.EnsureNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	if _, err := k.run(nil, "apply", "-k", dir); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Apply(ctx, c.Client, testkit.Consul("default")); err != nil {
		t.Fatal(err)
	}
	d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, "coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := c.Client.CoreV1().ConfigMaps(namespace).Get(ctx, "coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(pod.Containers))
	}
	ctr := pod.Containers[0]

	// The image of the Deployment, built under the name the Deployment runs.
	out, err := runCmd(ctx, 10*time.Minute, filepath.Dir(dir), nil, "make", "-s", "image", "ENGINE="+e.name, "IMAGE="+ctr.Image)
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Logf("make image ENGINE=%s IMAGE=%s:\n%s", e.name, ctr.Image, lastLines(out, 3))

	apiHost, apiPort := e.apiServer(t, c.Server)
	args := []string{"run", "--detach", "--name", e.container, "--pull", "never"}
	args = append(args, e.runFlags...)
	uid, gid := runAs(t, pod, ctr)
	args = append(args, "--user", fmt.Sprintf("%d:%d", uid, gid))
	args = append(args, securityFlags(t, ctr)...)
	args = append(args, "--sysctl", "net.ipv4.ip_unprivileged_port_start=1024")
	args = append(args, volumeFlags(t, pod, ctr, cm)...)
	args = append(args, "-v", serviceAccount(ctx, t, c)+":"+serviceAccountDir+":ro",
		"--add-host", apiServerName+":"+apiHost,
		"-e", "KUBERNETES_SERVICE_HOST="+apiServerName,
		"-e", "KUBERNETES_SERVICE_PORT="+strconv.Itoa(apiPort))
	// Each port of the container on a loopback port of the host, the same
	// one for UDP and TCP.
	published := map[string]string{} // "53/udp" -> 127.0.0.1:port
	hostPorts := map[int32]string{}
	for _, p := range ctr.Ports {
		if hostPorts[p.ContainerPort] == "" {
			port, err := testkit.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			hostPorts[p.ContainerPort] = testkit.Addr(port)
		}
		key := fmt.Sprintf("%d/%s", p.ContainerPort, strings.ToLower(string(p.Protocol)))
		published[key] = hostPorts[p.ContainerPort]
		args = append(args, "-p", published[key]+":"+key)
	}
	for _, env := range ctr.Env {
		args = append(args, "-e", env.Name+"="+env.Value)
	}
	if len(ctr.Command) > 0 {
		t.Fatalf("the container has a command, %q, which the test does not translate", ctr.Command)
	}
	args = append(args, ctr.Image)
	args = append(args, ctr.Args...)
	t.Logf("%s %s", e.name, strings.Join(args, " "))
	t.Cleanup(func() { e.remove() })
	if out, err := e.run(ctx, args...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	if !t.Run("Process", func(t *testing.T) { checkProcess(ctx, t, e, uid, gid, ctr) }) {
		t.FailNow()
	}
	dnsAddr := published["53/udp"]
	if dnsAddr == "" || published["53/tcp"] != dnsAddr {
		t.Fatalf("the Deployment does not have port 53 over UDP and TCP: %v", ctr.Ports)
	}
	t.Run("Serve", func(t *testing.T) { checkServe(ctx, t, e, dnsAddr) })
	t.Run("Probes", func(t *testing.T) {
		for _, p := range []*core.Probe{ctr.ReadinessProbe, ctr.LivenessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Fatalf("probe %+v, want HTTP GET", p)
			}
			port := p.HTTPGet.Port.IntValue()
			for _, cp := range ctr.Ports {
				if cp.Name == p.HTTPGet.Port.String() {
					port = int(cp.ContainerPort)
				}
			}
			target := "http://" + published[fmt.Sprintf("%d/tcp", port)] + p.HTTPGet.Path
			e.eventually(ctx, t, 20*time.Second, target+" to answer 200", func() (bool, string) {
				code, body := testkit.Get(target)
				return code == 200, fmt.Sprintf("%d %s", code, body)
			})
		}
	})
	t.Run("Stop", func(t *testing.T) { checkStop(ctx, t, e, cm.Data["Corefile"], dnsAddr) })

	logs, _ := e.run(ctx, "logs", e.container)
	for _, bad := range []string{"forbidden", "read-only file system", "permission denied", "panic"} {
		if strings.Contains(logs, bad) {
			t.Errorf("the log says %q:\n%s", bad, logs)
		}
	}
	if t.Failed() {
		t.Logf("container log:\n%s", logs)
	}
}

// runAs returns the user and group that the container runs as: those of its
// securityContext, else those of the pod's.
func runAs(t *testing.T, pod core.PodSpec, ctr core.Container) (int64, int64) {
	t.Helper()
	var uid, gid *int64
	if psc := pod.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
	}
	if sc := ctr.SecurityContext; sc != nil && sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if sc := ctr.SecurityContext; sc != nil && sc.RunAsGroup != nil {
		gid = sc.RunAsGroup
	}
	if uid == nil || gid == nil {
		t.Fatalf("the Deployment does not set runAsUser and runAsGroup: %+v, %+v", pod.SecurityContext, ctr.SecurityContext)
	}
	return *uid, *gid
}

// securityFlags returns the flags of run that apply the securityContext of
// the container, and fails the test on a setting it does not translate.
func securityFlags(t *testing.T, ctr core.Container) []string {
	t.Helper()
	sc := ctr.SecurityContext
	if sc == nil {
		t.Fatal("the container has no securityContext")
	}
	var flags []string
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		flags = append(flags, "--read-only")
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		flags = append(flags, "--security-opt", "no-new-privileges")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Fatal("the container is privileged")
	}
	if caps := sc.Capabilities; caps != nil {
		for _, c := range caps.Drop {
			flags = append(flags, "--cap-drop", string(c))
		}
		for _, c := range caps.Add {
			flags = append(flags, "--cap-add", string(c))
		}
	}
	return flags
}

// volumeFlags writes the ConfigMap volumes that the container mounts into
// folders, as the kubelet does, and returns the flags of run that mount them.
func volumeFlags(t *testing.T, pod core.PodSpec, ctr core.Container, cm *core.ConfigMap) []string {
	t.Helper()
	var flags []string
	for _, m := range ctr.VolumeMounts {
		i := slices.IndexFunc(pod.Volumes, func(v core.Volume) bool { return v.Name == m.Name })
		if i < 0 || pod.Volumes[i].ConfigMap == nil || pod.Volumes[i].ConfigMap.Name != cm.Name || m.SubPath != "" {
			t.Fatalf("the container mounts %+v, which is not the ConfigMap %s", m, cm.Name)
		}
		src := worldReadableDir(t)
		items := pod.Volumes[i].ConfigMap.Items
		if len(items) == 0 {
			for key := range cm.Data {
				items = append(items, core.KeyToPath{Key: key, Path: key})
			}
		}
		for _, item := range items {
			data, ok := cm.Data[item.Key]
			if !ok {
				t.Fatalf("the ConfigMap %s has no key %s", cm.Name, item.Key)
			}
			writeReadable(t, filepath.Join(src, item.Path), data)
		}
		mount := src + ":" + m.MountPath
		if m.ReadOnly {
			mount += ":ro"
		}
		flags = append(flags, "-v", mount)
	}
	return flags
}

// serviceAccount writes the files the kubelet mounts for the coredns
// ServiceAccount of deploy/ (a token, the API server's CA and the namespace)
// into a folder, and returns it.
func serviceAccount(ctx context.Context, t *testing.T, c *cluster.Cluster) string {
	t.Helper()
	exp := int64(3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, "coredns",
		&authn.TokenRequest{Spec: authn.TokenRequestSpec{ExpirationSeconds: &exp}}, meta.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// kube-apiserver writes its self-signed certificate, and that of the CA
	// that signed it, into --cert-dir.
	ca, err := os.ReadFile(filepath.Join(c.Dir, "certs", "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(ca)
	if block == nil {
		t.Fatal("no PEM certificate in the API server's apiserver.crt")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cert.DNSNames, apiServerName) {
		t.Fatalf("the API server's certificate names %v, not %s", cert.DNSNames, apiServerName)
	}
	dir := worldReadableDir(t)
	writeReadable(t, filepath.Join(dir, "token"), tr.Status.Token)
	writeReadable(t, filepath.Join(dir, "ca.crt"), string(ca))
	writeReadable(t, filepath.Join(dir, "namespace"), namespace)
	return dir
}

// worldReadableDir returns a new folder that any user may read, as the
// kubelet's volumes are to the container's user.
func worldReadableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeReadable(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkProcess checks, in /proc, that the container's process runs as the
// Deployment says: its user and group, NET_BIND_SERVICE its only capability
// and not an ambient one, no_new_privs, and a read-only root filesystem.
func checkProcess(ctx context.Context, t *testing.T, e *engine, uid, gid int64, ctr core.Container) {
	out, err := e.run(ctx, "inspect", "--format", "{{.State.Pid}}", e.container)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pid := strings.TrimSpace(out)
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if pid == "" || pid == "0" || err != nil {
		logs, _ := e.run(ctx, "logs", e.container)
		t.Fatalf("the container does not run (pid %q, %v); its log:\n%s", pid, err, logs)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	want := map[string]string{
		"Uid":        strings.Repeat(fmt.Sprintf(" %d", uid), 4)[1:],
		"Gid":        strings.Repeat(fmt.Sprintf(" %d", gid), 4)[1:],
		"CapInh":     fmt.Sprintf("%016x", 0),
		"CapPrm":     fmt.Sprintf("%016x", capNetBindService),
		"CapEff":     fmt.Sprintf("%016x", capNetBindService),
		"CapBnd":     fmt.Sprintf("%016x", capNetBindService),
		"CapAmb":     fmt.Sprintf("%016x", 0),
		"NoNewPrivs": "1",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("/proc/%s/status %s: %q, want %q", pid, k, fields[k], v)
		}
	}
	mountinfo, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	readOnly := map[string]bool{"/": false, serviceAccountDir: false}
	for _, m := range ctr.VolumeMounts {
		readOnly[m.MountPath] = false
	}
	for _, l := range strings.Split(string(mountinfo), "\n") {
		// id parent major:minor root mountpoint options ...
		if f := strings.Fields(l); len(f) > 5 {
			if _, ok := readOnly[f[4]]; ok {
				readOnly[f[4]] = slices.Contains(strings.Split(f[5], ","), "ro")
			}
		}
	}
	for path, ro := range readOnly {
		if !ro {
			t.Errorf("%s is not mounted read-only in the container", path)
		}
	}
}

// checkServe waits for the seed objects in DNS, over UDP and over TCP. (The
// answers record by record are TestConformance's and TestControllers'.)
func checkServe(ctx context.Context, t *testing.T, e *engine, dnsAddr string) {
	want := slices.Sorted(slices.Values(testkit.ConsulIPs))
	for _, network := range []string{"udp", "tcp"} {
		e.eventually(ctx, t, 30*time.Second, "the seed objects in DNS over "+network, func() (bool, string) {
			r, err := testkit.Exchange(network, dnsAddr, testkit.NewQuery("consul-server.default.svc.cluster.local.", dns.TypeA))
			if err != nil {
				return false, err.Error()
			}
			return r.Rcode == dns.RcodeSuccess && r.Authoritative && slices.Equal(addresses(r), want), r.String()
		})
	}
}

// checkStop stops the container as the kubelet stops a pod, SIGTERM then
// SIGKILL after the grace period (30s by default), while a client asks for a
// name all along. CoreDNS must answer after it has logged that it went into
// lameduck (the Corefile has one), then exit with status 0 by itself: at the
// end of the grace period SIGKILL would give 137. The order of the events
// is checked, on the host's clock, not their times: the engine stamps each
// line of the log as it reads it.
func checkStop(ctx context.Context, t *testing.T, e *engine, cf, dnsAddr string) {
	if !regexp.MustCompile(`(?m)^\s*lameduck\s+\S+\s*$`).MatchString(cf) {
		t.Fatalf("no lameduck in the Corefile:\n%s", cf)
	}
	const grace = 30 * time.Second
	var (
		mu       sync.Mutex
		answered []time.Time // when each full answer came
		wg       sync.WaitGroup
	)
	asking, stopAsking := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &dns.Client{Net: "udp", Timeout: time.Second}
		for asking.Err() == nil {
			r, _, err := c.ExchangeContext(asking, testkit.NewQuery("consul-server.default.svc.cluster.local.", dns.TypeA), dnsAddr)
			if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == len(testkit.ConsulIPs) {
				mu.Lock()
				answered = append(answered, time.Now())
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	out, err := e.run(ctx, "stop", "--time", strconv.Itoa(int(grace.Seconds())), e.container)
	stopAsking()
	wg.Wait()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = e.run(ctx, "inspect", "--format", "{{.State.ExitCode}}", e.container)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code := strings.TrimSpace(out); code != "0" {
		t.Errorf("exit status %s after SIGTERM, want 0 (137 is SIGKILL at the end of the %s grace period)", code, grace)
	}
	logs, err := e.run(ctx, "logs", "--timestamps", e.container)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	var term, lame time.Time
	for _, l := range strings.Split(logs, "\n") {
		stamp, line, _ := strings.Cut(l, " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		switch {
		case err != nil:
		case strings.Contains(line, "SIGTERM") && term.IsZero():
			term = at
		case strings.Contains(line, "lameduck") && lame.IsZero():
			lame = at
		}
	}
	if term.IsZero() || lame.IsZero() || lame.Before(term) {
		t.Fatalf("the log does not tell of SIGTERM, then lameduck:\n%s", logs)
	}
	mu.Lock()
	defer mu.Unlock()
	after := 0
	for _, at := range answered {
		if at.After(lame) {
			after++
		}
	}
	t.Logf("stop: %d answers, %d of them once in lameduck", len(answered), after)
	if after == 0 {
		t.Errorf("no answer once CoreDNS logged that it went into lameduck, %s; %d answers before", lame.Format(time.RFC3339Nano), len(answered))
	}
}

// engine is the container engine that the test builds and runs the image
// with.
type engine struct {
	name      string   // docker or podman
	env       []string // of every command, beside the test's own
	runFlags  []string // of run
	container string   // the name of the test's container
	// bridge is the host's address on the docker bridge (docker only).
	bridge string
}

// containerEngine returns docker where a Docker engine answers, else
// podman, as `make image` picks; it skips the test where neither runs
// containers, and fails it under CI.
func containerEngine(t *testing.T) *engine {
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; .ci/run installs podman, runc and slirp4netns for this test", msg)
		}
		t.Skipf("%s: install podman, runc and slirp4netns (Debian packages) or run a Docker engine to test the image", msg)
	}
	e := &engine{container: fmt.Sprintf("headless-image-test-%d", os.Getpid())}
	if out, err := runCmd(context.Background(), time.Minute, "", nil, "docker", "info"); err == nil {
		e.name = "docker"
		out, err := e.run(context.Background(), "network", "inspect", "bridge", "--format",
			"{{range .IPAM.Config}}{{.Gateway}} {{end}}")
		if f := strings.Fields(out); len(f) > 0 {
			e.bridge = f[0]
		}
		if err != nil || net.ParseIP(e.bridge) == nil {
			unavailable("no address of the docker bridge (docker network inspect bridge): %v %s", err, out)
		}
		return e
	} else if _, lookErr := exec.LookPath("podman"); lookErr != nil {
		unavailable("no container engine: docker info failed (%v) and podman is not installed", lastLines(out+err.Error(), 1))
	}
	e.name = "podman"
	dir := t.TempDir()
	// The sandbox of this repository's machines forbids raising
	// RLIMIT_NOFILE and RLIMIT_NPROC, which podman's default ulimits do.
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.env = []string{"CONTAINERS_CONF=" + conf}
	if out, err := e.run(context.Background(), "info"); err != nil {
		unavailable("podman info failed: %v %s", err, lastLines(out, 3))
	}
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		unavailable("podman has no slirp4netns")
	}
	// crun refuses the hybrid cgroup layout of this repository's machines:
	// runc, under the wrapper of kubeRuntime.
	runc, err := exec.LookPath("runc")
	if err != nil {
		if runc, err = exec.LookPath("/usr/sbin/runc"); err != nil {
			unavailable("podman has no runc")
		}
	}
	e.runFlags = []string{"--runtime", kubeRuntime(t, dir, runc), "--network", "slirp4netns:allow_host_loopback=true"}
	return e
}

// kubeRuntime writes an OCI runtime that is runtime with the capabilities of
// a Kubernetes runtime: it empties the ambient and inheritable sets of the
// container's process in the bundle's config.json, which podman fills with
// the added capabilities when the user is not root. It returns its path.
func kubeRuntime(t *testing.T, dir, runtime string) string {
	t.Helper()
	script := `#!/bin/sh
prev=
for arg; do
	case "$prev" in --bundle|-b) bundle=$arg ;; esac
	case "$arg" in --bundle=*) bundle=${arg#--bundle=} ;; esac
	prev=$arg
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
	sed -i -e 's/"ambient":\[[^]]*\]/"ambient":[]/' -e 's/"inheritable":\[[^]]*\]/"inheritable":[]/' "$bundle/config.json" || exit 1
fi
exec ` + runtime + ` "$@"
`
	path := filepath.Join(dir, "runc-kube")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// apiServer returns the address and port by which the container reaches the
// API server at server (https://127.0.0.1:port).
func (e *engine) apiServer(t *testing.T, server string) (string, int) {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	if e.name == "podman" {
		return "10.0.2.2", port // slirp4netns's address of the host's loopback
	}
	l, err := net.Listen("tcp", net.JoinHostPort(e.bridge, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(relay(l, u.Host))
	return e.bridge, l.Addr().(*net.TCPAddr).Port
}

// relay forwards the connections that l accepts to to, until the function
// it returns is called.
func relay(l net.Listener, to string) func() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", to, 5*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			for _, p := range [][2]net.Conn{{in, out}, {out, in}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = io.Copy(p[0], p[1])
					p[0].Close()
				}()
			}
		}
	}()
	return func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// run runs the engine with args, bounded to two minutes, and returns its
// output.
func (e *engine) run(ctx context.Context, args ...string) (string, error) {
	return runCmd(ctx, 2*time.Minute, "", e.env, e.name, args...)
}

// remove removes the test's container, killing it first if it runs.
func (e *engine) remove() {
	ctx := context.Background()
	_, _ = e.run(ctx, "kill", e.container)
	_, _ = e.run(ctx, "rm", "--force", e.container)
}

// eventually is testkit.Eventually that fails as soon as the container
// stops, with its log.
func (e *engine) eventually(ctx context.Context, t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testkit.Eventually(t, timeout, what, func() (bool, string) {
		ok, state := cond()
		if running, _ := e.run(ctx, "inspect", "--format", "{{.State.Running}}", e.container); !ok && strings.TrimSpace(running) != "true" {
			logs, _ := e.run(ctx, "logs", e.container)
			t.Fatalf("waiting for %s: the container runs: %s; last: %s\n%s", what, strings.TrimSpace(running), state, logs)
		}
		return ok, state
	})
}

// runCmd runs name with args in dir, with env added to the test's
// environment, bounded to timeout, and returns its standard output and
// error together.
func runCmd(ctx context.Context, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%s %s: timed out after %s", name, strings.Join(args, " "), timeout)
	} else if err != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out.String(), err
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
