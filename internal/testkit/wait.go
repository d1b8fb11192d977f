package testkit

import (
	"testing"
	"time"
)

// Eventually calls cond every 50ms until it holds, and fails the test after
// timeout with what it waited for and the last state cond described.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	eventually(t, timeout, what, cond, func() string { return "" })
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string), more func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for %s; last: %s%s", timeout, what, state, more())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
