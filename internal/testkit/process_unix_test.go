//go:build unix

package testkit

import (
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopKillsGroup checks that Stop ends what the process started in its
// group too.
func TestStopKillsGroup(t *testing.T) {
	bin := script(t, `sleep 60 & echo $!; wait`)
	log := filepath.Join(t.TempDir(), "log")
	p, err := StartProcess("fake", log, "", bin)
	if err != nil {
		t.Fatal(err)
	}
	var child int
	Eventually(t, 5*time.Second, "the pid of the child", func() (bool, string) {
		child, err = strconv.Atoi(strings.TrimSpace(p.Tail(1)))
		return err == nil, p.Tail(1)
	})
	p.Stop()
	p.Stop()
	if exited, _ := p.Exited(); !exited {
		t.Error("the process runs after Stop")
	}
	Eventually(t, 5*time.Second, "the child to end", func() (bool, string) {
		return syscall.Kill(child, 0) != nil, "pid " + strconv.Itoa(child) + " is alive"
	})
}
