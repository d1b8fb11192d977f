package main

import (
	"strings"
	"testing"
	"time"
)

// t0 is when the events of the tests begin.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// feed builds a printer for module m and hands it events.
func feed(p *printer, events ...event) {
	for _, e := range events {
		p.handle(e)
	}
}

func at(d time.Duration) time.Time { return t0.Add(d) }

const pkgA = "example.com/m/a"

func newTestPrinter(out *strings.Builder) *printer {
	p := newPrinter(out, "example.com/m")
	p.last, p.idle = t0, t0
	return p
}

func TestFastPassIsTwoLines(t *testing.T) {
	var out strings.Builder
	p := newTestPrinter(&out)
	feed(p,
		event{Time: at(0), Action: "start", Package: pkgA},
		event{Time: at(0), Action: "run", Package: pkgA, Test: "TestX"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestX", Output: "=== RUN   TestX\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestX", Output: "    a_test.go:9: a log line\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestX", Output: "--- PASS: TestX (0.10s)\n"},
		event{Time: at(0), Action: "pass", Package: pkgA, Test: "TestX", Elapsed: 0.1},
		event{Time: at(0), Action: "output", Package: pkgA, Output: "PASS\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Output: "ok  \texample.com/m/a\t0.2s\n"},
		event{Time: at(0), Action: "pass", Package: pkgA, Elapsed: 0.2},
		event{Time: at(0), Action: "start", Package: "example.com/m/cmd/b"},
		event{Time: at(0), Action: "output", Package: "example.com/m/cmd/b", Output: "?   \texample.com/m/cmd/b\t[no test files]\n"},
		event{Time: at(0), Action: "skip", Package: "example.com/m/cmd/b"},
	)
	if want := "start ./a\nok    ./a (200ms)\n"; out.String() != want {
		t.Errorf("a fast passing run printed\n%s\nwant\n%s", out.String(), want)
	}
	if p.passed != 1 || p.skipped != 1 {
		t.Errorf("counted %d passed and %d without tests, want 1 and 1", p.passed, p.skipped)
	}
}

func TestFailureInFull(t *testing.T) {
	var out strings.Builder
	p := newTestPrinter(&out)
	feed(p,
		event{Time: at(0), Action: "start", Package: pkgA},
		event{Time: at(0), Action: "run", Package: pkgA, Test: "TestX"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestX", Output: "=== RUN   TestX\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestX", Output: "    a_test.go:9: got 1, want 2\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestX", Output: "--- FAIL: TestX (0.10s)\n"},
		event{Time: at(0), Action: "fail", Package: pkgA, Test: "TestX", Elapsed: 0.1},
		event{Time: at(0), Action: "output", Package: pkgA, Output: "FAIL\n"},
		event{Time: at(0), Action: "fail", Package: pkgA, Elapsed: 0.2},
	)
	want := "start ./a\n=== RUN   TestX\n    a_test.go:9: got 1, want 2\n--- FAIL: TestX (0.10s)\nFAIL  ./a (200ms)\n"
	if out.String() != want {
		t.Errorf("a failure printed\n%s\nwant\n%s", out.String(), want)
	}
}

func TestBuildFailureInFull(t *testing.T) {
	var out strings.Builder
	p := newTestPrinter(&out)
	feed(p,
		event{Action: "build-output", ImportPath: "example.com/m/a [example.com/m/a.test]", Output: "# example.com/m/a\n"},
		event{Action: "build-output", ImportPath: "example.com/m/a [example.com/m/a.test]", Output: "a/a.go:3:2: undefined: c\n"},
		event{Action: "build-fail", ImportPath: "example.com/m/a [example.com/m/a.test]"},
		event{Time: at(0), Action: "start", Package: pkgA},
		event{Time: at(0), Action: "output", Package: pkgA, Output: "FAIL\texample.com/m/a [build failed]\n"},
		event{Time: at(0), Action: "fail", Package: pkgA, FailedBuild: "example.com/m/a [example.com/m/a.test]"},
	)
	if !strings.Contains(out.String(), "a/a.go:3:2: undefined: c\n") || !strings.Contains(out.String(), "FAIL  ./a") {
		t.Errorf("a build failure printed\n%s", out.String())
	}
}

func TestSlowTestLogs(t *testing.T) {
	var out strings.Builder
	p := newTestPrinter(&out)
	feed(p,
		event{Time: at(0), Action: "start", Package: pkgA},
		event{Time: at(0), Action: "run", Package: pkgA, Test: "TestSlow"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestSlow", Output: "=== RUN   TestSlow\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestSlow", Output: "    a_test.go:9: loading 1000 services\n"},
	)
	p.check(at(10 * time.Second))
	if strings.Contains(out.String(), "loading") {
		t.Errorf("the log of a test that has run 10s is shown:\n%s", out.String())
	}
	p.check(at(31 * time.Second))
	feed(p,
		event{Time: at(40 * time.Second), Action: "run", Package: pkgA, Test: "TestSlow/sub"},
		event{Time: at(40 * time.Second), Action: "output", Package: pkgA, Test: "TestSlow/sub", Output: "    a_test.go:12: querying\n"},
		event{Time: at(60 * time.Second), Action: "pass", Package: pkgA, Test: "TestSlow/sub", Elapsed: 20},
		event{Time: at(60 * time.Second), Action: "output", Package: pkgA, Test: "TestSlow", Output: "--- PASS: TestSlow (60.00s)\n"},
		event{Time: at(60 * time.Second), Action: "pass", Package: pkgA, Test: "TestSlow", Elapsed: 60},
	)
	want := "start ./a\n" +
		"  TestSlow runs long; its log:\n" +
		"    TestSlow: a_test.go:9: loading 1000 services\n" +
		"    TestSlow/sub: a_test.go:12: querying\n" +
		"  TestSlow passed (1m0s)\n"
	if out.String() != want {
		t.Errorf("a slow test printed\n%s\nwant\n%s", out.String(), want)
	}
}

func TestSilenceSaysWhatRuns(t *testing.T) {
	var out strings.Builder
	p := newTestPrinter(&out)
	p.check(at(31 * time.Second))
	if want := "  still compiling (31s since the start)\n"; out.String() != want {
		t.Errorf("a silence before any package printed %q, want %q", out.String(), want)
	}
	out.Reset()
	feed(p,
		event{Time: at(40 * time.Second), Action: "start", Package: pkgA},
		event{Time: at(40 * time.Second), Action: "run", Package: pkgA, Test: "TestA"},
		event{Time: at(40 * time.Second), Action: "run", Package: pkgA, Test: "TestB"},
		event{Time: at(40 * time.Second), Action: "pause", Package: pkgA, Test: "TestB"},
	)
	p.last = at(40 * time.Second)
	p.check(at(65 * time.Second))
	p.check(at(71 * time.Second))
	if want := "start ./a\n  still running TestA in ./a (31s)\n"; out.String() != want {
		t.Errorf("a silence while a test runs printed\n%q\nwant\n%q", out.String(), want)
	}
}

func TestSkipReason(t *testing.T) {
	var out strings.Builder
	p := newTestPrinter(&out)
	feed(p,
		event{Time: at(0), Action: "start", Package: pkgA},
		event{Time: at(0), Action: "run", Package: pkgA, Test: "TestImage"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestImage", Output: "=== RUN   TestImage\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestImage", Output: "    image_test.go:70: no container engine\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestImage", Output: "--- SKIP: TestImage (0.00s)\n"},
		event{Time: at(0), Action: "skip", Package: pkgA, Test: "TestImage"},
	)
	if want := "start ./a\n  skip TestImage: image_test.go:70: no container engine\n"; out.String() != want {
		t.Errorf("a skipped test printed %q, want %q", out.String(), want)
	}
}

func TestTimeoutInFull(t *testing.T) {
	var out strings.Builder
	p := newTestPrinter(&out)
	feed(p,
		event{Time: at(0), Action: "start", Package: pkgA},
		event{Time: at(0), Action: "run", Package: pkgA, Test: "TestHangs"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestHangs", Output: "=== RUN   TestHangs\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Test: "TestHangs", Output: "panic: test timed out after 10m0s\n"},
		event{Time: at(0), Action: "output", Package: pkgA, Output: "FAIL\texample.com/m/a\t600.1s\n"},
		event{Time: at(0), Action: "fail", Package: pkgA, Elapsed: 600.1},
	)
	want := "start ./a\n=== RUN   TestHangs\npanic: test timed out after 10m0s\nFAIL  ./a (10m0s)\n"
	if out.String() != want {
		t.Errorf("a test that never ended printed\n%s\nwant\n%s", out.String(), want)
	}
}

func TestDirFirst(t *testing.T) {
	for _, c := range []struct{ args, want string }{
		{"-race ./...", "test -json -race ./..."},
		{"-C test/migration -race ./...", "test -C test/migration -json -race ./..."},
	} {
		if got := strings.Join(testArgs(strings.Fields(c.args)), " "); got != c.want {
			t.Errorf("gotest %s runs go %s, want go %s", c.args, got, c.want)
		}
	}
}
