package explain

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
)

var specCases = []struct {
	in   string
	want Spec
	err  string // a part of the error; empty: no error
}{
	{in: "proj-a/web", want: Spec{Kind: SpecNamed, Namespace: "proj-a", Name: "web"}},
	{in: "proj-a/web:80", want: Spec{Kind: SpecNamed, Namespace: "proj-a", Name: "web", Port: "80"}},
	{in: "proj-a/web:53/udp", want: Spec{Kind: SpecNamed, Namespace: "proj-a", Name: "web", Port: "53", Protocol: corev1.ProtocolUDP}},
	{in: "proj-a/web:http", want: Spec{Kind: SpecNamed, Namespace: "proj-a", Name: "web", Port: "http"}},
	{in: "proj-a/app=web,tier!=db:8080/TCP", want: Spec{Kind: SpecLabels, Namespace: "proj-a", Selector: "app=web,tier!=db", Port: "8080", Protocol: corev1.ProtocolTCP}},
	{in: "proj-a", want: Spec{Kind: SpecNamespace, Namespace: "proj-a"}},
	{in: "node/n1.example", want: Spec{Kind: SpecNode, Name: "n1.example"}},
	{in: "10.1.0.1", want: Spec{Kind: SpecAddress, Prefix: netip.MustParsePrefix("10.1.0.1/32")}},
	{in: "10.1.0.0/16", want: Spec{Kind: SpecAddress, Prefix: netip.MustParsePrefix("10.1.0.0/16")}},
	{in: "10.1.0.1:443", want: Spec{Kind: SpecAddress, Prefix: netip.MustParsePrefix("10.1.0.1/32"), Port: "443"}},
	{in: "2001:db8::1", want: Spec{Kind: SpecAddress, Prefix: netip.MustParsePrefix("2001:db8::1/128")}},
	{in: "[2001:db8::1]:443/TCP", want: Spec{Kind: SpecAddress, Prefix: netip.MustParsePrefix("2001:db8::1/128"), Port: "443", Protocol: corev1.ProtocolTCP}},
	{in: "", err: "empty endpoint"},
	{in: "Proj_A/web", err: `namespace "Proj_A"`},
	{in: "proj-a/web:", err: "nothing after the colon"},
	{in: "proj-a/web:70000", err: `port "70000"`},
	{in: "proj-a/web:80/icmp", err: `protocol "icmp": use TCP, UDP or SCTP`},
	{in: "proj-a/web:not_a_port", err: `port "not_a_port": neither a number`},
	{in: "proj-a/app=(", err: "label selector"},
	{in: "proj-a/" + strings.Repeat("x", MaxSpecLength), err: "more than the 1024 accepted"},
}

func TestParseSpec(t *testing.T) {
	for _, c := range specCases {
		got, err := ParseSpec(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseSpec(%q): error %v, want one containing %q", c.in, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("ParseSpec(%q): %v", c.in, err)
		case c.err == "":
			if diff := cmp.Diff(c.want, got, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
				t.Errorf("ParseSpec(%q) (-want +got):\n%s", c.in, diff)
			}
		}
	}
}

// FuzzParseSpec: any argument parses or fails with an error, never a panic;
// what parses reads back to the same Spec, and resolves (or fails) on an
// index without panicking.
func FuzzParseSpec(f *testing.F) {
	for _, c := range specCases {
		f.Add(c.in)
	}
	x := explainIndexForFuzz()
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err != nil {
			return
		}
		again, err := ParseSpec(specString(spec))
		if err != nil {
			t.Fatalf("%q parses to %+v, whose form %q does not parse: %v", s, spec, specString(spec), err)
		}
		if !cmp.Equal(spec, again, cmpopts.EquateComparable(netip.Prefix{})) {
			t.Fatalf("%q: %+v reads back as %+v", s, spec, again)
		}
		if target, err := x.Resolve(spec); err == nil && len(target.Endpoints) == 0 {
			t.Fatalf("%q resolves to no endpoint and no error", s)
		}
	})
}

func explainIndexForFuzz() *Index {
	c := newCorpus(1, 3, 2, 4)
	return New(c.objects())
}
