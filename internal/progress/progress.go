// Package progress reports long steps, such as the first build of
// kube-apiserver, while they run: what is being done, how long it takes the
// first time, and a line every 30 seconds that it is still going, so that a
// first run never sits silent for minutes. A fast step prints nothing.
package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// interval is how often a running step says that it is still running;
// quiet is how long a build runs before it says what it builds, so that a
// build the build cache makes fast says nothing. Tests shorten both.
var interval, quiet = 30 * time.Second, 10 * time.Second

// goCmd is the go command, replaced in tests.
var goCmd = "go"

// Run runs cmd, which must not have started, writing to w a line every 30
// seconds while it runs: "  still DOING (1m30s)". It returns cmd's error.
func Run(w io.Writer, doing string, cmd *exec.Cmd) error {
	return While(w, doing, cmd.Run)
}

// While calls fn, writing to w a line every 30 seconds until it returns:
// "  still DOING (1m30s)". It returns fn's error.
func While(w io.Writer, doing string, fn func() error) error {
	_, err := beat(w, doing, "", fn)
	return err
}

// GoBuild runs `go build ARGS` in dir with env added to the process's
// environment. A build that ends within 10 seconds prints nothing. A longer
// one writes to w "Building WHAT (ESTIMATE on 2 cores the first time).",
// then every 30 seconds how long it has run, and at the end how long it
// took. go's output is in the error.
func GoBuild(w io.Writer, what, estimate, dir string, env []string, args ...string) error {
	first := fmt.Sprintf("Building %s.", what)
	if estimate != "" {
		first = fmt.Sprintf("Building %s (%s on 2 cores the first time).", what, estimate)
	}
	cmd := exec.Command(goCmd, append([]string{"build"}, args...)...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	begin := time.Now()
	announced, err := beat(w, "building "+what, first, cmd.Run)
	if err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", strings.Join(args, " "), dir, err, out.Bytes())
	}
	if announced {
		fmt.Fprintf(w, "Built %s in %v.\n", what, time.Since(begin).Round(time.Second))
	}
	return nil
}

// beat calls fn, writing first to w once fn has run for quiet, unless first
// is empty, and a line every interval until fn returns. It returns whether
// first was written, and fn's error.
func beat(w io.Writer, doing, first string, fn func() error) (announced bool, err error) {
	begin, done := time.Now(), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker, timer := time.NewTicker(interval), time.NewTimer(quiet)
		defer ticker.Stop()
		defer timer.Stop()
		for {
			select {
			case <-done:
				return
			case <-timer.C:
				if first != "" {
					announced = true
					fmt.Fprintln(w, first)
				}
			case <-ticker.C:
				fmt.Fprintf(w, "  still %s (%v)\n", doing, time.Since(begin).Round(time.Second))
			}
		}
	}()
	err = fn()
	close(done)
	wg.Wait()
	return announced, err
}
