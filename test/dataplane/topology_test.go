//go:build linux

package dataplane

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"
)

// TestTopology checks the helper on its own, with no control plane and no
// enforcer: two pods reach each other's listeners through node1 on TCP and
// UDP, a port without a listener is refused, and nothing in the topology has
// a default route.
func TestTopology(t *testing.T) {
	if reason := missingPrerequisites(); reason != "" {
		t.Skip("data-plane suite: needs root, ip netns, iptables and ipset: " + reason)
	}
	topo, err := NewTopology()
	t.Cleanup(topo.Teardown)
	if err != nil {
		t.Fatal(err)
	}
	a, err := topo.AddHost("ns/a", netip.MustParseAddr("10.244.1.101"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := topo.AddHost("ns/b", netip.MustParseAddr("10.244.1.102"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(b, []int{80}, []int{9000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	ctx := context.Background()
	for _, tc := range []struct {
		to   Target
		want bool
	}{
		{Target{b, 80, TCP}, true},
		{Target{b, 9000, UDP}, true},
		{Target{b, 81, TCP}, false},
		{Target{b, 9001, UDP}, false},
	} {
		if got, detail := Probe(ctx, a, tc.to); got != tc.want {
			t.Errorf("%s → %s: got %s (%s), want %s", a.Name, tc.to, verdict(got), detail, verdict(tc.want))
		}
	}
	for _, h := range []*Host{topo.Node, a, b} {
		out, err := exec.Command("ip", "-n", h.NS, "route", "show", "default").CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Errorf("%s: a default route or an error: %q %v", h.NS, out, err)
		}
	}
}
