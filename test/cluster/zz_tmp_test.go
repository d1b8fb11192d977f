package cluster

import (
	"testing"
	"time"
)

func TestTmpSleep(t *testing.T) {
	c, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	t.Log("READY", c.Dir)
	time.Sleep(60 * time.Second)
}
