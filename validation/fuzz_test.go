package validation

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

var fuzzConfig = Config{
	PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/56")},
	ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
}

// FuzzValidateIPBlock feeds arbitrary cidr and except strings (except
// entries separated by commas) and checks that validation never panics, that
// an accepted CIDR is a strict, masked prefix which round-trips through
// String() (IPv6 written non-canonically is accepted only with a warning),
// and that accepted except entries lie strictly inside cidr.
func FuzzValidateIPBlock(f *testing.F) {
	for _, tc := range cidrCases {
		f.Add(tc.cidr, "")
	}
	for _, tc := range ipBlockCases {
		f.Add(tc.cidr, strings.Join(tc.except, ","))
	}
	fldPath := field.NewPath("ipBlock")

	f.Fuzz(func(t *testing.T, cidr, exceptList string) {
		var except []string
		if exceptList != "" {
			except = strings.Split(exceptList, ",")
		}
		prefix, cidrErrs := ValidateCIDR(cidr, fldPath.Child("cidr"))
		errs, warnings := ValidateIPBlock(cidr, except, fldPath, fuzzConfig)

		for _, err := range append(slices.Clone(cidrErrs), errs...) {
			if !strings.HasPrefix(err.Field, "ipBlock.cidr") && !strings.HasPrefix(err.Field, "ipBlock.except") {
				t.Errorf("error on an unexpected field: %v", err)
			}
			if err.Detail == "" && err.Type != field.ErrorTypeTooMany {
				t.Errorf("error without a message: %#v", err)
			}
		}
		for _, w := range warnings {
			if !strings.HasPrefix(w.Field, "ipBlock.") || w.Detail == "" {
				t.Errorf("warning without a field path or detail: %q", w)
			}
		}

		if len(cidrErrs) > 0 {
			if prefix.IsValid() {
				t.Errorf("ValidateCIDR(%q) rejected it but returned prefix %v", cidr, prefix)
			}
			if !slices.ContainsFunc(errs, func(e *field.Error) bool { return e.Field == "ipBlock.cidr" }) {
				t.Errorf("ValidateIPBlock accepted cidr %q that ValidateCIDR rejects: %v", cidr, errs)
			}
			return
		}
		parsed, err := netip.ParsePrefix(cidr)
		switch {
		case err != nil:
			t.Fatalf("accepted %q, which netip cannot parse: %v", cidr, err)
		case parsed != prefix:
			t.Errorf("ValidateCIDR(%q) = %v, want %v", cidr, prefix, parsed)
		case prefix.Masked() != prefix || prefix.Addr().Is4In6() || prefix.Addr().Zone() != "":
			t.Errorf("accepted %q, which is not a plain masked prefix", cidr)
		case netip.MustParsePrefix(prefix.String()) != prefix:
			t.Errorf("%v does not round-trip through String()", prefix)
		}
		if prefix.String() != cidr {
			canonicalWarned := slices.ContainsFunc(warnings, func(w Warning) bool {
				return w.Field == "ipBlock.cidr" && strings.HasPrefix(w.Detail, "IPv6 CIDR value")
			})
			if prefix.Addr().Is4() || !canonicalWarned {
				t.Errorf("accepted non-canonical %q (canonical %q) without a warning: %q", cidr, prefix, warnings)
			}
		}

		if len(errs) > 0 {
			return
		}
		for _, e := range except {
			hole := netip.MustParsePrefix(e) // accepted, so it parses
			if hole.Bits() <= prefix.Bits() || !prefix.Contains(hole.Addr()) {
				t.Errorf("accepted except %q, which is not strictly inside %v", e, prefix)
			}
		}
	})
}

// FuzzValidateNetworkAllowlist decodes arbitrary JSON into an allowlist and
// checks that validation never panics, is deterministic, names spec fields,
// and that an accepted allowlist has only well-formed peers and ports.
func FuzzValidateNetworkAllowlist(f *testing.F) {
	for _, cases := range [][]allowlistCase{allowlistValidCases(), allowlistPeerCases(), allowlistPortCases(), allowlistLookupCases(), allowlistClusterTrafficCases()} {
		for _, tc := range cases {
			nal := validAllowlist()
			if tc.tweak != nil {
				tc.tweak(nal)
			}
			data, err := json.Marshal(nal)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(`{"metadata":{"namespace":"demo-project-1"},"spec":{"ingress":[{"from":[{}],"ports":[{"port":"80","endPort":-1}]}]}}`))
	f.Add([]byte(`{"spec":{"egress":[{"to":[{"service":{"name":""}},{"ipBlock":{"cidr":"::ffff:1.2.3.4/128","except":["",""]}}]}]}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var nal v1alpha1.NetworkAllowlist
		if err := json.Unmarshal(data, &nal); err != nil {
			return
		}
		for _, cluster := range []Cluster{nil, validCluster()} {
			errs, warnings := ValidateNetworkAllowlist(&nal, fuzzConfig, cluster)
			againErrs, againWarnings := ValidateNetworkAllowlist(&nal, fuzzConfig, cluster)
			if diff := cmp.Diff(errs, againErrs); diff != "" {
				t.Errorf("errors differ between two runs:\n%s", diff)
			}
			if diff := cmp.Diff(warnings, againWarnings); diff != "" {
				t.Errorf("warnings differ between two runs:\n%s", diff)
			}
			for _, err := range errs {
				if !strings.HasPrefix(err.Field, "spec.") {
					t.Errorf("error outside spec: %v", err)
				}
			}
			for _, w := range warnings {
				if !strings.HasPrefix(w.Field, "spec.") || w.Detail == "" {
					t.Errorf("warning without a spec field path or detail: %q", w)
				}
			}
			// Ratcheting against the same object turns each error into
			// at most one warning and never adds an error.
			updErrs, updWarnings := ValidateNetworkAllowlistUpdate(&nal, &nal, fuzzConfig, cluster)
			if len(updErrs) > len(errs) || len(updErrs)+len(updWarnings) != len(errs)+len(warnings) {
				t.Errorf("update against itself: %d errors and %d warnings, create: %d and %d", len(updErrs), len(updWarnings), len(errs), len(warnings))
			}
			if len(errs) == 0 {
				checkAccepted(t, &nal)
			}
			// The webhook's lookups hand validation the informer
			// cache's own objects (lookup.NewReadOnly): it must not
			// modify what it looks up.
			if cluster != nil && !reflect.DeepEqual(cluster, validCluster()) {
				t.Errorf("validation modified the objects it looked up: %+v", cluster)
			}
		}
	})
}

// checkAccepted asserts the invariants every accepted allowlist satisfies.
func checkAccepted(t *testing.T, nal *v1alpha1.NetworkAllowlist) {
	t.Helper()
	var peers [][]v1alpha1.Peer
	var ports [][]v1alpha1.Port
	for _, r := range nal.Spec.Ingress {
		peers, ports = append(peers, r.From), append(ports, r.Ports)
	}
	for _, r := range nal.Spec.Egress {
		peers, ports = append(peers, r.To), append(ports, r.Ports)
	}
	for _, r := range nal.Spec.Ingress {
		for _, p := range r.From {
			if p.KubernetesAPI != nil {
				t.Errorf("accepted kubernetesAPI as an ingress peer: %+v", r)
			}
		}
	}
	for _, list := range peers {
		if len(list) == 0 {
			t.Errorf("accepted a rule without peers: %+v", nal.Spec)
		}
		for _, p := range list {
			kinds := 0
			if p.Namespace != "" {
				kinds++
			}
			if p.Service != nil {
				kinds++
			}
			if p.IPBlock != nil {
				kinds++
				if pr, err := netip.ParsePrefix(p.IPBlock.CIDR); err != nil || pr.Masked() != pr || pr.Addr().Is4In6() {
					t.Errorf("accepted ipBlock cidr %q", p.IPBlock.CIDR)
				}
			}
			if p.Project != "" {
				kinds++
				if msgs := utilvalidation.IsValidLabelValue(p.Project); len(msgs) > 0 {
					t.Errorf("accepted project %q: %v", p.Project, msgs)
				}
			}
			if p.KubernetesAPI != nil {
				kinds++
			}
			if kinds != 1 {
				t.Errorf("accepted peer %+v with %d kinds", p, kinds)
			}
		}
	}
	for _, list := range ports {
		for _, p := range list {
			if p.Port != nil && p.Port.Type == intstr.Int && (p.Port.IntVal < 1 || p.Port.IntVal > 65535) {
				t.Errorf("accepted port %v", p.Port.IntVal)
			}
			if p.EndPort != nil && (p.Port == nil || p.Port.Type != intstr.Int || *p.EndPort < p.Port.IntVal || *p.EndPort > 65535) {
				t.Errorf("accepted endPort %d with port %v", *p.EndPort, p.Port)
			}
			if p.Protocol != nil && !slices.Contains(supportedProtocols[:2], *p.Protocol) {
				t.Errorf("accepted protocol %q with SCTP off", *p.Protocol)
			}
		}
	}
}
