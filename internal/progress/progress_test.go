package progress

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary stands in for the go command when FAKE_GO is set: "list"
// prints three packages and, with FAKE_GO_LISTED, creates that file;
// "build", with FAKE_GO_LISTED, waits for that file (go list has run), then
// prints, with FAKE_GO_DOWNLOAD, a download line, then the packages as go
// build -v does, one every FAKE_GO_DELAY, and, with FAKE_GO_FAIL, an error.
func TestMain(m *testing.M) {
	if os.Getenv("FAKE_GO") == "" {
		os.Exit(m.Run())
	}
	pkgs := []string{"runtime", "example.com/a", "example.com/cmd/b"}
	if os.Args[1] == "list" {
		for _, p := range pkgs {
			os.Stdout.WriteString(p + "\n")
		}
		if listed := os.Getenv("FAKE_GO_LISTED"); listed != "" {
			if err := os.WriteFile(listed, nil, 0o644); err != nil {
				os.Exit(2)
			}
		}
		os.Exit(0)
	}
	if listed := os.Getenv("FAKE_GO_LISTED"); listed != "" {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(listed); err == nil {
				break
			}
		}
	}
	delay, _ := time.ParseDuration(os.Getenv("FAKE_GO_DELAY"))
	if os.Getenv("FAKE_GO_DOWNLOAD") != "" {
		os.Stderr.WriteString("go: downloading example.com/a v1.0.0\n")
	}
	for _, p := range pkgs {
		time.Sleep(delay)
		os.Stderr.WriteString(p + "\n")
	}
	if os.Getenv("FAKE_GO_FAIL") != "" {
		os.Stderr.WriteString("# example.com/cmd/b\na/b.go:3:2: undefined: c\n")
		os.Exit(1)
	}
	os.Exit(0)
}

// fakeGo makes the test binary the go command for the rest of the test.
func fakeGo(t *testing.T, delay time.Duration, fail bool) {
	t.Setenv("FAKE_GO", "1")
	t.Setenv("FAKE_GO_DELAY", delay.String())
	if fail {
		t.Setenv("FAKE_GO_FAIL", "1")
	}
	old := goCmd
	goCmd = os.Args[0]
	t.Cleanup(func() { goCmd = old })
}

// shortInterval makes a step announce itself after q and beat every d for
// the rest of the test.
func shortInterval(t *testing.T, q, d time.Duration) {
	oldQ, oldD := quiet, interval
	quiet, interval = q, d
	t.Cleanup(func() { quiet, interval = oldQ, oldD })
}

// syncBuffer is a strings.Builder safe for the heartbeat's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestGoBuildFastIsQuiet(t *testing.T) {
	fakeGo(t, 0, false)
	shortInterval(t, time.Hour, time.Hour)
	var out syncBuffer
	if err := GoBuild(&out, "thing", "about 3 minutes", "", nil, "-o", "thing", "./cmd/b"); err != nil {
		t.Fatal(err)
	}
	if out.String() != "" {
		t.Errorf("a build faster than Quiet wrote %q, want nothing", out.String())
	}
}

func TestGoBuildDownloads(t *testing.T) {
	fakeGo(t, 0, false)
	t.Setenv("FAKE_GO_DOWNLOAD", "1")
	shortInterval(t, time.Hour, time.Hour)
	var out syncBuffer
	if err := GoBuild(&out, "thing", "about 3 minutes", "", nil, "-o", "thing", "./cmd/b"); err != nil {
		t.Fatal(err)
	}
	want := "Building thing (about 3 minutes on 2 cores the first time).\ngo: downloading example.com/a v1.0.0\nBuilt thing in "
	if !strings.HasPrefix(out.String(), want) || strings.Count(out.String(), "\n") != 3 {
		t.Errorf("a build that downloads wrote\n%q\nwant\n%q", out.String(), want)
	}
}

func TestGoBuildDownloadsThenAnnouncesOnce(t *testing.T) {
	fakeGo(t, 50*time.Millisecond, false)
	t.Setenv("FAKE_GO_DOWNLOAD", "1")
	shortInterval(t, 20*time.Millisecond, time.Hour)
	var out syncBuffer
	if err := GoBuild(&out, "thing", "", "", nil, "./cmd/b"); err != nil {
		t.Fatal(err)
	}
	want := "Building thing.\ngo: downloading example.com/a v1.0.0\nBuilt thing in "
	if got := out.String(); !strings.HasPrefix(got, want) || strings.Count(got, "Building thing.") != 1 {
		t.Errorf("a build that downloads, then runs longer than Quiet, wrote\n%q\nwant\n%q", got, want)
	}
}

func TestGoBuildAnnounces(t *testing.T) {
	fakeGo(t, 50*time.Millisecond, false)
	shortInterval(t, 20*time.Millisecond, time.Hour)
	var out syncBuffer
	if err := GoBuild(&out, "thing", "", "", nil, "./cmd/b"); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "Building thing.\nBuilt thing in ") || strings.Count(got, "\n") != 2 {
		t.Errorf("a build longer than Quiet and shorter than Interval wrote\n%s", got)
	}
}

func TestGoBuildHeartbeat(t *testing.T) {
	fakeGo(t, 150*time.Millisecond, false)
	// The build starts once go list is done, however slowly the test binary
	// starts as go list on a loaded machine: the count is then known.
	t.Setenv("FAKE_GO_LISTED", filepath.Join(t.TempDir(), "listed"))
	shortInterval(t, 20*time.Millisecond, 60*time.Millisecond)
	var out syncBuffer
	if err := GoBuild(&out, "thing", "", "", nil, "./cmd/b"); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasPrefix(got, "Building thing.\n  still building thing (0s") || !strings.Contains(got, ")\nBuilt thing in ") {
		t.Errorf("a slow build wrote\n%s", got)
	}
	if !strings.Contains(got, " of 3 packages compiled)\n") {
		t.Errorf("a slow build does not count the packages:\n%s", got)
	}
}

func TestGoBuildFails(t *testing.T) {
	fakeGo(t, 0, true)
	var out syncBuffer
	err := GoBuild(&out, "thing", "", "", nil, "-o", "thing", "./cmd/b")
	if err == nil || !strings.Contains(err.Error(), "a/b.go:3:2: undefined: c") {
		t.Fatalf("a failed build returned %v, want the compiler's message", err)
	}
	if strings.Contains(err.Error(), "example.com/a\n") {
		t.Errorf("the error lists compiled packages: %v", err)
	}
}

func TestRunHeartbeat(t *testing.T) {
	shortInterval(t, 40*time.Millisecond, 40*time.Millisecond)
	t.Setenv("FAKE_GO", "1")
	t.Setenv("FAKE_GO_DELAY", "100ms")
	var out syncBuffer
	if err := Run(&out, "running the fake", exec.Command(os.Args[0], "build")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "  still running the fake (0s)\n") {
		t.Errorf("a slow command's heartbeat is %q", got)
	}
}

func TestRunFastIsQuiet(t *testing.T) {
	shortInterval(t, time.Hour, time.Hour)
	t.Setenv("FAKE_GO", "1")
	var out syncBuffer
	if err := Run(&out, "running the fake", exec.Command(os.Args[0], "build")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "" {
		t.Errorf("a fast command's heartbeat is %q, want nothing", got)
	}
}

func TestListArgs(t *testing.T) {
	got := strings.Join(listArgs([]string{"-tags=x", "-o", "out", "-ldflags=-s -w", "-o=y", "-v", "."}), " ")
	if want := "-tags=x -ldflags=-s -w ."; got != want {
		t.Errorf("listArgs = %q, want %q", got, want)
	}
}
