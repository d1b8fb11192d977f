package headless

import (
	"bytes"
	"errors"
	golog "log"
	"os"
	"strings"
	"testing"
)

// TestLogger checks what client-go's messages look like in the CoreDNS log:
// the plugin's name, the level, the message, the error and the key/value
// pairs; its debugging levels left out.
func TestLogger(t *testing.T) {
	var out bytes.Buffer
	golog.SetOutput(&out)
	t.Cleanup(func() { golog.SetOutput(os.Stderr) })

	l := newLogger().WithValues("reflector", "headless Services")
	l.Error(errors.New("connection refused"), "Failed to watch", "type", "headless Services")
	l.Info("Warning: watch ended with error", "err", "EOF")
	l.V(1).Info("debugging")
	l.WithName("x").Info("odd", "key")

	want := []string{
		`[ERROR] plugin/headless: Failed to watch: connection refused "reflector"="headless Services" "type"="headless Services"`,
		`[INFO] plugin/headless: Warning: watch ended with error "reflector"="headless Services" "err"="EOF"`,
		`[INFO] plugin/headless: odd "reflector"="headless Services" "key"="<no-value>"`,
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(got) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(got), len(want), out.String())
	}
	for i := range want {
		if !strings.HasSuffix(got[i], want[i]) {
			t.Errorf("line %d: %q, want it to end in %q", i+1, got[i], want[i])
		}
	}
}
