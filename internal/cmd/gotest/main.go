// Command gotest runs `go test -json` with its arguments and prints, in place
// of go test's own output, what a person waiting for `make test` wants to
// see:
//
//   - a line as each package starts and as it ends, with its time;
//   - the log of a test, indented under its name, as it comes once the test
//     has run for 30 seconds, so that a long test says what it does;
//   - a line every 30 seconds in which nothing else was printed, naming the
//     tests that run (or saying that go test compiles);
//   - the whole output of a test, a package or a build that failed;
//   - one line per skipped top-level test, with its reason.
//
// Nothing else: a fast, passing run prints two lines per package. It exits
// with go test's status.
//
// With -C DIR first, go test runs in DIR, which may hold a module of its own
// (test/migration); packages are still named from the module of the current
// directory, ./test/migration.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"
)

// quiet is how long a test runs before its log is shown, and how long
// nothing is printed before a line says what is running.
const quiet = 30 * time.Second

func main() {
	// Ctrl-C reaches go test too: keep reading until it has said what it
	// has to say, and exit with its status.
	signal.Ignore(os.Interrupt)

	cmd := exec.Command("go", testArgs(os.Args[1:])...)
	cmd.Stdin, cmd.Stderr = os.Stdin, os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fatal(err)
	}
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	p := newPrinter(os.Stdout, module())
	stop := p.tick()
	p.read(stdout)
	err = cmd.Wait()
	stop()
	p.summary()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	case err != nil:
		fatal(err)
	case p.failed > 0:
		os.Exit(1)
	}
}

// testArgs returns the arguments of go test for those of gotest: -C DIR,
// which go requires first, then -json and the rest.
func testArgs(args []string) []string {
	if len(args) >= 2 && args[0] == "-C" {
		return append([]string{"test", "-C", args[1], "-json"}, args[2:]...)
	}
	return append([]string{"test", "-json"}, args...)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gotest:", err)
	os.Exit(1)
}

// module returns the path of the main module, which package names are
// shortened against, or "" if go cannot say.
func module() string {
	out, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// event is a line of go test -json (see go doc test2json), including the
// build events.
type event struct {
	Time        time.Time
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string
	FailedBuild string
}

// printer follows the events and prints what the package comment says.
type printer struct {
	w      io.Writer
	module string
	begin  time.Time

	mu       sync.Mutex
	last     time.Time // when a line was last printed
	lastDone string    // the package that ended last
	idle     time.Time // when it ended, or the run began
	pkgs     map[string]*pkg
	builds   map[string][]string // build output by import path
	passed   int
	failed   int
	skipped  int // packages without tests
}

// pkg is a package whose tests run.
type pkg struct {
	name    string
	begin   time.Time
	shown   bool // its start line is printed
	tests   map[string]*test
	started []string // tests by start, to name them in order
}

// test is a running test or subtest.
type test struct {
	begin   time.Time
	running bool     // not paused by t.Parallel
	lines   []string // output not printed yet
	logged  bool     // its log is printed as it comes
	headed  bool     // the line that introduces its log is printed
}

func newPrinter(w io.Writer, module string) *printer {
	now := time.Now()
	return &printer{w: w, module: module, begin: now, last: now, idle: now, pkgs: map[string]*pkg{}, builds: map[string][]string{}}
}

// read handles the events of r until it ends.
func (p *printer) read(r io.Reader) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for s.Scan() {
		var e event
		if err := json.Unmarshal(s.Bytes(), &e); err != nil || e.Action == "" {
			p.mu.Lock()
			p.printf("%s\n", s.Text())
			p.mu.Unlock()
			continue
		}
		p.handle(e)
	}
}

// handle updates the state with e and prints what it calls for.
func (p *printer) handle(e event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Action {
	case "build-output":
		p.builds[e.ImportPath] = append(p.builds[e.ImportPath], e.Output)
		return
	case "build-fail":
		p.printf("%s", strings.Join(p.builds[e.ImportPath], ""))
		delete(p.builds, e.ImportPath)
		return
	}
	k := p.pkgs[e.Package]
	if k == nil {
		k = &pkg{name: p.short(e.Package), begin: e.Time, tests: map[string]*test{}}
		p.pkgs[e.Package] = k
	}
	if e.Test == "" {
		p.packageEvent(k, e)
	} else {
		p.testEvent(k, e)
	}
}

// packageEvent handles an event of package k outside its tests.
func (p *printer) packageEvent(k *pkg, e event) {
	switch e.Action {
	case "output":
		if framing(e.Output) || strings.HasSuffix(e.Output, "[no test files]\n") {
			return
		}
		// Output outside tests, from TestMain: what it builds and starts.
		p.show(k)
		p.printf("  %s", e.Output)
	case "pass", "fail", "skip":
		delete(p.pkgs, e.Package)
		p.lastDone, p.idle = k.name, time.Now()
		took := round(time.Duration(e.Elapsed * float64(time.Second)))
		switch {
		case e.Action == "fail":
			p.failed++
			p.show(k)
			if lines := p.builds[e.FailedBuild]; len(lines) > 0 {
				p.printf("%s", strings.Join(lines, ""))
				delete(p.builds, e.FailedBuild)
			}
			// Tests that did not end: a panic, a timeout. The output
			// outside tests is printed already, but for go test's own
			// lines, which this line replaces.
			for _, name := range k.started {
				if t := k.tests[name]; t != nil {
					p.printf("%s", strings.Join(t.lines, ""))
				}
			}
			p.printf("FAIL  %s (%v)\n", k.name, took)
		case e.Action == "skip" && !k.shown:
			p.skipped++
		default:
			p.passed++
			p.show(k)
			p.printf("ok    %s (%v)\n", k.name, took)
		}
	}
}

// testEvent handles an event of a test of package k.
func (p *printer) testEvent(k *pkg, e event) {
	t := k.tests[e.Test]
	if t == nil {
		// A subtest of a test whose log is shown has its log shown too.
		t = &test{begin: e.Time, running: true, logged: k.logged(e.Test)}
		k.tests[e.Test] = t
		k.started = append(k.started, e.Test)
	}
	p.show(k)
	switch e.Action {
	case "pause":
		t.running = false
	case "cont":
		// A parallel test starts its work when it continues.
		if !t.running {
			t.begin = e.Time
		}
		t.running = true
	case "output":
		if t.logged && !framing(e.Output) {
			p.log(k, e.Test, e.Output)
		} else {
			t.lines = append(t.lines, e.Output)
		}
	case "pass":
		if t.logged && !strings.Contains(e.Test, "/") {
			p.printf("  %s passed (%v)\n", e.Test, round(time.Duration(e.Elapsed*float64(time.Second))))
		}
		k.done(e.Test)
	case "skip":
		if !strings.Contains(e.Test, "/") {
			p.printf("  skip %s: %s\n", e.Test, reason(t.lines))
		}
		k.done(e.Test)
	case "fail":
		p.printf("%s", strings.Join(t.lines, ""))
		k.done(e.Test)
	}
}

// log prints a line of the log of test name, one that has run for longer
// than quiet or a subtest of one; the first line of a top-level test and its
// subtests comes after one that introduces them.
func (p *printer) log(k *pkg, name, line string) {
	top := name
	if i := strings.Index(name, "/"); i > 0 {
		top = name[:i]
	}
	if t := k.tests[top]; t != nil && !t.headed {
		t.headed = true
		p.printf("  %s runs long; its log:\n", top)
	}
	p.printf("    %s: %s", name, strings.TrimLeft(line, " \t"))
}

// logged reports whether the log of a parent test of name is shown.
func (k *pkg) logged(name string) bool {
	for i := strings.LastIndex(name, "/"); i > 0; i = strings.LastIndex(name, "/") {
		name = name[:i]
		if t := k.tests[name]; t != nil && t.logged {
			return true
		}
	}
	return false
}

// done forgets the test name.
func (k *pkg) done(name string) {
	delete(k.tests, name)
	for i, n := range k.started {
		if n == name {
			k.started = append(k.started[:i], k.started[i+1:]...)
			break
		}
	}
}

// show prints the start line of k if it is not printed yet.
func (p *printer) show(k *pkg) {
	if !k.shown {
		k.shown = true
		p.printf("start %s\n", k.name)
	}
}

// tick checks every second for packages to announce, tests that have run
// for longer than quiet and silences longer than quiet, until stop is
// called.
func (p *printer) tick() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				p.mu.Lock()
				p.check(now)
				p.mu.Unlock()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// check does the work of tick at time now.
func (p *printer) check(now time.Time) {
	var names []string
	for path := range p.pkgs {
		names = append(names, path)
	}
	sort.Strings(names)
	for _, path := range names {
		k := p.pkgs[path]
		// A package without tests ends within a second: only a package
		// that is still running is announced.
		if now.Sub(k.begin) > time.Second {
			p.show(k)
		}
		for _, name := range k.started {
			t := k.tests[name]
			if t.logged || !t.running || (now.Sub(t.begin) < quiet && !k.logged(name)) {
				continue
			}
			t.logged = true
			var rest []string
			for _, line := range t.lines {
				if framing(line) {
					rest = append(rest, line)
				} else {
					p.log(k, name, line)
				}
			}
			t.lines = rest
		}
	}
	if now.Sub(p.last) < quiet {
		return
	}
	if len(names) == 0 {
		after := "the start"
		if p.lastDone != "" {
			after = p.lastDone + " ended"
		}
		p.printf("  still compiling (%v since %s)\n", round(now.Sub(p.idle)), after)
		return
	}
	for _, path := range names {
		k := p.pkgs[path]
		var running []string
		for _, name := range k.started {
			if t := k.tests[name]; t.running && !strings.Contains(name, "/") {
				running = append(running, name)
			}
		}
		what := "starting"
		if len(running) > 0 {
			what = "running " + list(running, 4)
		}
		p.printf("  still %s in %s (%v)\n", what, k.name, round(now.Sub(k.begin)))
	}
}

// summary prints the counts and the time of the whole run.
func (p *printer) summary() {
	p.mu.Lock()
	defer p.mu.Unlock()
	verdict := "ok"
	if p.failed > 0 {
		verdict = "FAIL"
	}
	p.printf("%s: %d packages passed, %d failed, %d without tests, in %v\n", verdict, p.passed, p.failed, p.skipped, round(time.Since(p.begin)))
}

// printf prints and notes the time; p.mu must be held.
func (p *printer) printf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if s == "" {
		return
	}
	fmt.Fprint(p.w, s)
	p.last = time.Now()
}

// short returns a package path relative to the main module, as a pattern
// of the go command would name it.
func (p *printer) short(path string) string {
	switch {
	case p.module == "":
		return path
	case path == p.module:
		return "."
	case strings.HasPrefix(path, p.module+"/"):
		return "./" + strings.TrimPrefix(path, p.module+"/")
	}
	return path
}

// framing reports whether a line of output is go test's, not a test's: the
// lines that start, pause, continue and end tests and packages.
func framing(line string) bool {
	trimmed := strings.TrimLeft(line, " ")
	for _, prefix := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP", "PASS\n", "FAIL\n", "ok  \t", "FAIL\t", "?   \t", "testing: warning: no tests to run"} {
		if strings.HasPrefix(trimmed, prefix) {
			return true
		}
	}
	return false
}

// reason returns the last line of a skipped test's log, its t.Skip message.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if !framing(lines[i]) && strings.TrimSpace(lines[i]) != "" {
			return strings.TrimSpace(lines[i])
		}
	}
	return "no reason given"
}

// list joins up to n names and says how many more there are.
func list(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// round rounds d for a person to read.
func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}
