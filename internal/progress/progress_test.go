package progress

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary stands in for the go command when FAKE_GO is set: it
// sleeps FAKE_GO_DELAY, prints a line and, with FAKE_GO_FAIL, fails with a
// compiler's message.
func TestMain(m *testing.M) {
	if os.Getenv("FAKE_GO") == "" {
		os.Exit(m.Run())
	}
	delay, _ := time.ParseDuration(os.Getenv("FAKE_GO_DELAY"))
	time.Sleep(delay)
	os.Stderr.WriteString("example.com/a\n")
	if os.Getenv("FAKE_GO_FAIL") != "" {
		os.Stderr.WriteString("a/b.go:3:2: undefined: c\n")
		os.Exit(1)
	}
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

// TestSteps checks what a step writes, by how long it runs against quiet
// and interval: nothing when fast, what a build builds once it has run for
// quiet, a heartbeat every interval, and a failed build's output in its
// error.
func TestSteps(t *testing.T) {
	goCmd = os.Args[0]
	t.Setenv("FAKE_GO", "1")
	for _, tc := range []struct {
		name            string
		delay           time.Duration
		quiet, interval time.Duration
		run             func(w *syncBuffer) error
		fail            bool
		want            string // a regular expression of the whole output
		wantErr         string // a part of the error
	}{
		{name: "fast build", quiet: time.Hour, interval: time.Hour, want: `^$`,
			run: func(w *syncBuffer) error { return GoBuild(w, "thing", "about 3 minutes", "", nil, "./cmd/b") }},
		{name: "build longer than quiet", delay: 200 * time.Millisecond, quiet: 20 * time.Millisecond, interval: time.Hour,
			want: `^Building thing \(about 3 minutes on 2 cores the first time\)\.\nBuilt thing in \d+s\.\n$`,
			run:  func(w *syncBuffer) error { return GoBuild(w, "thing", "about 3 minutes", "", nil, "./cmd/b") }},
		{name: "slow build", delay: 300 * time.Millisecond, quiet: 20 * time.Millisecond, interval: 100 * time.Millisecond,
			want: `^Building thing\.\n(  still building thing \(\d+s\)\n)+Built thing in \d+s\.\n$`,
			run:  func(w *syncBuffer) error { return GoBuild(w, "thing", "", "", nil, "./cmd/b") }},
		{name: "failed build", quiet: time.Hour, interval: time.Hour, fail: true, want: `^$`, wantErr: "a/b.go:3:2: undefined: c",
			run: func(w *syncBuffer) error { return GoBuild(w, "thing", "", "", nil, "./cmd/b") }},
		{name: "slow command", delay: 200 * time.Millisecond, quiet: 20 * time.Millisecond, interval: 60 * time.Millisecond,
			want: `^(  still running the fake \(\d+s\)\n)+$`,
			run:  func(w *syncBuffer) error { return Run(w, "running the fake", exec.Command(os.Args[0])) }},
		{name: "fast command", quiet: 20 * time.Millisecond, interval: time.Hour, want: `^$`,
			run: func(w *syncBuffer) error { return Run(w, "running the fake", exec.Command(os.Args[0])) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			quiet, interval = tc.quiet, tc.interval
			t.Setenv("FAKE_GO_DELAY", tc.delay.String())
			if tc.fail {
				t.Setenv("FAKE_GO_FAIL", "1")
			}
			var out syncBuffer
			err := tc.run(&out)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			if got := out.b.String(); !regexp.MustCompile(tc.want).MatchString(got) {
				t.Errorf("wrote %q, want %s", got, tc.want)
			}
		})
	}
}
