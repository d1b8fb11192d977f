// Package progress reports long steps, such as the first build of
// kube-apiserver, while they run: what is being done, how long it takes the
// first time, and a line every 30 seconds that it is still going, so that a
// first run never sits silent for minutes. A fast step prints at most its
// first line.
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

// Interval is how often a running step says that it is still running.
const Interval = 30 * time.Second

// Quiet is how long a build runs before it says what it builds: a build
// that takes less, because the build cache holds its packages, says nothing.
const Quiet = 10 * time.Second

// interval, quiet and goCmd are Interval, Quiet and the go command,
// replaced in tests.
var (
	interval = Interval
	quiet    = Quiet
	goCmd    = "go"
)

// Cores is the machine the estimates of the callers were measured on.
const Cores = "2 cores"

// Run runs cmd, which must not have started, writing to w a line every
// Interval while it runs: "  still DOING (1m30s)". It returns cmd's error.
func Run(w io.Writer, doing string, cmd *exec.Cmd) error {
	return While(w, doing, cmd.Run)
}

// While calls fn, writing to w a line every Interval until it returns:
// "  still DOING (1m30s)". It returns fn's error.
func While(w io.Writer, doing string, fn func() error) error {
	s := &step{w: w, doing: doing, begin: time.Now()}
	stop := s.beat()
	defer stop()
	return fn()
}

// GoBuild runs `go build -v ARGS` in dir with env added to the process's
// environment. ARGS are those of go build: flags, -o and packages. A build
// that ends within Quiet prints nothing. A longer one writes to w, at Quiet,
// "Building WHAT (ESTIMATE on 2 cores the first time).", then every Interval
// how long it has run and how many of the packages it needs are compiled,
// and at the end how long it took. The lines of `go: downloading` go to w as
// they come; the rest of go's output is in the error.
func GoBuild(w io.Writer, what, estimate, dir string, env []string, args ...string) error {
	s := &step{w: w, doing: "building " + what, begin: time.Now()}
	if estimate != "" {
		s.first = fmt.Sprintf("Building %s (%s on %s the first time).", what, estimate, Cores)
	} else {
		s.first = fmt.Sprintf("Building %s.", what)
	}
	gocmd := goCmd
	var counted sync.WaitGroup
	counted.Add(1)
	go func() {
		defer counted.Done()
		s.countPackages(gocmd, dir, env, args)
	}()
	defer counted.Wait() // nothing of the step outlives it

	cmd := exec.Command(gocmd, append([]string{"build", "-v"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	lines := &lineWriter{line: func(line string) {
		switch {
		case isPackage(line):
			s.compiled()
		case strings.HasPrefix(line, "go: downloading "), strings.HasPrefix(line, "go: finding "):
			s.println(line)
		default:
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}}
	cmd.Stdout, cmd.Stderr = lines, lines
	if err := cmd.Start(); err != nil {
		return err
	}
	stop := s.beat()
	err := cmd.Wait()
	stop()
	lines.flush()
	if err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", strings.Join(args, " "), dir, err, out.Bytes())
	}
	if s.announced {
		fmt.Fprintf(w, "Built %s in %v.\n", what, round(time.Since(s.begin)))
	}
	return nil
}

// step is a running step and what its heartbeat says.
type step struct {
	w     io.Writer
	doing string
	begin time.Time
	first string // said once the step has run for quiet, if not empty

	mu        sync.Mutex
	packages  int  // compiled so far
	total     int  // packages the build needs, 0 until known
	announced bool // first is said; read once the step is done
}

// beat writes first once the step has run for quiet, and a line every
// interval, until the returned function is called.
func (s *step) beat() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		var announce <-chan time.Time
		if s.first != "" {
			timer := time.NewTimer(quiet)
			defer timer.Stop()
			announce = timer.C
		}
		for {
			select {
			case <-done:
				return
			case <-announce:
				s.println(s.first)
			case <-ticker.C:
				s.mu.Lock()
				line := fmt.Sprintf("  still %s (%v", s.doing, round(time.Since(s.begin)))
				// No package compiled yet: go downloads modules, or links
				// packages that the build cache holds.
				switch {
				case s.packages > 0 && s.total > 0:
					line += fmt.Sprintf(", %d of %d packages compiled", s.packages, s.total)
				case s.packages > 0:
					line += fmt.Sprintf(", %d packages compiled", s.packages)
				}
				s.mu.Unlock()
				s.println(line + ")")
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// println writes line, after first if that is not said yet: a line that
// comes before quiet, such as a download, shows that the step is not fast.
func (s *step) println(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first != "" && !s.announced {
		s.announced = true
		fmt.Fprintln(s.w, s.first)
	}
	if line != s.first { // first, once: a download may have said it already
		fmt.Fprintln(s.w, line)
	}
}

// compiled counts a package that go build -v names.
func (s *step) compiled() {
	s.mu.Lock()
	s.packages++
	s.mu.Unlock()
}

// countPackages learns from go list how many packages the go build of args
// needs; the heartbeat says the count when it is known. A failure leaves it
// unknown: the build reports its own errors.
func (s *step) countPackages(gocmd, dir string, env, args []string) {
	cmd := exec.Command(gocmd, append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, listArgs(args)...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		return
	}
	s.mu.Lock()
	s.total = bytes.Count(out, []byte("\n"))
	s.mu.Unlock()
}

// listArgs returns the arguments of go build that go list takes too: all
// but -o and its value.
func listArgs(args []string) []string {
	var list []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" || a == "--o":
			i++
		case strings.HasPrefix(a, "-o="), strings.HasPrefix(a, "--o="), a == "-v":
		default:
			list = append(list, a)
		}
	}
	return list
}

// isPackage reports whether a line of go build -v output is the import path
// of a package being compiled, not a message: a path has no spaces or colons.
func isPackage(line string) bool {
	return line != "" && !strings.ContainsAny(line, " \t:#")
}

// round rounds d for a person to read: whole seconds.
func round(d time.Duration) time.Duration { return d.Round(time.Second) }

// lineWriter calls line for every complete line written to it.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	line func(string)
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

// flush passes on the last line if it has no newline.
func (l *lineWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}
