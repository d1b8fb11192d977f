package cluster

import "testing"

func TestNodeSubnet(t *testing.T) {
	for _, c := range []struct {
		cidr string
		i    int
		want string
	}{
		{"10.244.0.0/16", 0, "10.244.0.0/24"},
		{"10.244.0.0/16", 2, "10.244.2.0/24"},
		{"10.0.0.0/8", 300, "10.1.44.0/24"},
		{"fd00:10:244::/56", 0, "fd00:10:244::/64"},
		{"fd00:10:244::/56", 3, "fd00:10:244:3::/64"},
	} {
		got, err := nodeSubnet(c.cidr, c.i)
		if err != nil || got != c.want {
			t.Errorf("nodeSubnet(%s, %d) = %s, %v; want %s", c.cidr, c.i, got, err, c.want)
		}
	}
	if _, err := nodeSubnet("10.244.0.0/24", 1); err == nil {
		t.Error("a second /24 in a /24: no error")
	}
}
