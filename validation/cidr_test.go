package validation

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

const genericCIDRDetail = "must be a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64"

// cidrCases are the table of ValidateCIDR and the seeds of FuzzValidateIPBlock.
var cidrCases = []struct {
	cidr       string
	wantPrefix netip.Prefix // zero when invalid
	wantDetail string       // Invalid detail; "" when valid or when wantErrs is set
	wantErrs   field.ErrorList
}{
	{cidr: "10.1.0.0/24", wantPrefix: netip.MustParsePrefix("10.1.0.0/24")},
	{cidr: "192.168.1.1/32", wantPrefix: netip.MustParsePrefix("192.168.1.1/32")},
	{cidr: "0.0.0.0/0", wantPrefix: netip.MustParsePrefix("0.0.0.0/0")},
	{cidr: "2001:db8::/64", wantPrefix: netip.MustParsePrefix("2001:db8::/64")},
	{cidr: "::/0", wantPrefix: netip.MustParsePrefix("::/0")},
	{cidr: "2001:DB8::/32", wantPrefix: netip.MustParsePrefix("2001:db8::/32")}, // non-canonical: a warning, see ValidateIPBlock
	{cidr: "", wantErrs: field.ErrorList{field.Required(field.NewPath("cidr"), "set a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64")}},
	{cidr: "10.1.0.1/24", wantDetail: "must not have host bits set: use the network address 10.1.0.0/24, or 10.1.0.1/32 for the single address 10.1.0.1"},
	{cidr: "2001:db8::1/64", wantDetail: "must not have host bits set: use the network address 2001:db8::/64, or 2001:db8::1/128 for the single address 2001:db8::1"},
	{cidr: "010.1.0.0/16", wantDetail: "must not have leading zeros (some tools read them as octal): write 10.1.0.0/16"},
	{cidr: "10.0.0.0/08", wantDetail: "must not have leading zeros (some tools read them as octal): write 10.0.0.0/8"},
	{cidr: "10.0.0.0/33", wantDetail: "prefix length 33 is too long: an IPv4 prefix length is at most 32"},
	{cidr: "2001:db8::/129", wantDetail: "prefix length 129 is too long: an IPv6 prefix length is at most 128"},
	{cidr: "::ffff:10.0.0.0/104", wantDetail: "must not be an IPv4-mapped IPv6 address: write the IPv4 CIDR 10.0.0.0/8"},
	{cidr: "::ffff:0:0/80", wantDetail: "must not be an IPv4-mapped IPv6 address: write an IPv4 CIDR instead"},
	{cidr: "10.1.0.1", wantDetail: "is an address, not a CIDR: add a prefix length, e.g. 10.1.0.1/32 for this single address"},
	{cidr: "2001:db8::1", wantDetail: "is an address, not a CIDR: add a prefix length, e.g. 2001:db8::1/128 for this single address"},
	{cidr: "garbage", wantDetail: genericCIDRDetail},
	{cidr: "10.0.0.0/", wantDetail: genericCIDRDetail},
	{cidr: "10.0.0.0/+8", wantDetail: genericCIDRDetail},
	{cidr: "10.0.0.0/-1", wantDetail: genericCIDRDetail},
	{cidr: " 10.0.0.0/8", wantDetail: genericCIDRDetail},
	{cidr: "fe80::%eth0/64", wantDetail: genericCIDRDetail},
	{cidr: "10.0.0.0/8/8", wantDetail: genericCIDRDetail},
}

func TestValidateCIDR(t *testing.T) {
	fldPath := field.NewPath("cidr")
	for _, tc := range cidrCases {
		t.Run(tc.cidr, func(t *testing.T) {
			wantErrs := tc.wantErrs
			if tc.wantDetail != "" {
				wantErrs = field.ErrorList{field.Invalid(fldPath, tc.cidr, tc.wantDetail)}
			}
			prefix, errs := ValidateCIDR(tc.cidr, fldPath)
			checkFindings(t, errs, nil, wantErrs, nil)
			if prefix != tc.wantPrefix {
				t.Errorf("prefix = %v, want %v", prefix, tc.wantPrefix)
			}
		})
	}
}

// ipBlockCases are the table of ValidateIPBlock and seeds of FuzzValidateIPBlock.
var ipBlockCases = []struct {
	name         string
	cidr         string
	except       []string
	cfg          Config
	wantErrs     field.ErrorList
	wantWarnings []string
}{
	{name: "single address", cidr: "192.168.1.1/32"},
	{name: "holes inside", cidr: "10.0.0.0/8", except: []string{"10.1.0.0/16", "10.255.255.255/32"}},
	{name: "IPv6 hole inside", cidr: "2001:db8::/32", except: []string{"2001:db8:1::/48"}},
	{name: "except outside", cidr: "10.1.0.0/16", except: []string{"10.2.0.0/24"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("except").Index(0), "10.2.0.0/24",
			"lies outside cidr 10.1.0.0/16: except can only remove addresses inside cidr; remove this entry or widen cidr"),
	}},
	{name: "except one bit wider", cidr: "10.1.0.0/16", except: []string{"10.0.0.0/15"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("except").Index(0), "10.0.0.0/15",
			"is wider than cidr 10.1.0.0/16: an except entry must be a smaller network inside cidr"),
	}},
	{name: "except equal", cidr: "10.1.0.0/16", except: []string{"10.1.0.0/16"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("except").Index(0), "10.1.0.0/16",
			"equals cidr 10.1.0.0/16, which would leave no address at all: make it a smaller network inside cidr, or remove the peer"),
	}},
	{name: "except wider", cidr: "10.1.0.0/16", except: []string{"10.0.0.0/8"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("except").Index(0), "10.0.0.0/8",
			"is wider than cidr 10.1.0.0/16: an except entry must be a smaller network inside cidr"),
	}},
	{name: "except wider with the same base address", cidr: "10.0.0.0/24", except: []string{"10.0.0.0/16"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("except").Index(0), "10.0.0.0/16",
			"is wider than cidr 10.0.0.0/24: an except entry must be a smaller network inside cidr"),
	}},
	{name: "IPv6 except wider with the same base address", cidr: "2001:db8::/64", except: []string{"2001:db8::/48"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("except").Index(0), "2001:db8::/48",
			"is wider than cidr 2001:db8::/64: an except entry must be a smaller network inside cidr"),
	}},
	{name: "except of the other family", cidr: "10.0.0.0/8", except: []string{"2001:db8::/64"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("except").Index(0), "2001:db8::/64",
			"is IPv6 but cidr 10.0.0.0/8 is IPv4: an except entry must be a smaller network of the same family inside cidr"),
	}},
	{name: "IPv4 except in IPv6 whole space", cidr: "::/0", except: []string{"10.0.0.0/8"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("except").Index(0), "10.0.0.0/8",
			"is IPv4 but cidr ::/0 is IPv6: an except entry must be a smaller network of the same family inside cidr"),
	}, wantWarnings: []string{
		"ipBlock.cidr: ::/0 matches every IPv6 address, which depending on the network plugin includes the pods of every project: list the external networks you mean instead",
	}},
	{name: "invalid except entries", cidr: "10.0.0.0/8", except: []string{"10.1.0.1/16", "", "::ffff:10.1.0.0/112"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("except").Index(0), "10.1.0.1/16",
			"must not have host bits set: use the network address 10.1.0.0/16, or 10.1.0.1/32 for the single address 10.1.0.1"),
		field.Required(ipBlockPath.Child("except").Index(1), "set a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64"),
		field.Invalid(ipBlockPath.Child("except").Index(2), "::ffff:10.1.0.0/112",
			"must not be an IPv4-mapped IPv6 address: write the IPv4 CIDR 10.1.0.0/16"),
	}},
	{name: "invalid cidr, except not compared", cidr: "10.0.0.1/8", except: []string{"192.168.0.0/16"}, wantErrs: field.ErrorList{
		field.Invalid(ipBlockPath.Child("cidr"), "10.0.0.1/8",
			"must not have host bits set: use the network address 10.0.0.0/8, or 10.0.0.1/32 for the single address 10.0.0.1"),
	}},
	{name: "too many except entries", cidr: "10.0.0.0/8", except: func() []string {
		var except []string
		for i := range 33 {
			except = append(except, fmt.Sprintf("10.%d.0.0/16", i))
		}
		return except
	}(), wantErrs: field.ErrorList{field.TooMany(ipBlockPath.Child("except"), 33, 32)}},
	{name: "whole IPv4 space", cidr: "0.0.0.0/0", except: []string{"10.0.0.0/8"}, cfg: Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}, wantWarnings: []string{
		"ipBlock.cidr: 0.0.0.0/0 matches every IPv4 address, which depending on the network plugin includes the pods of every project: list the external networks you mean instead",
	}},
	{name: "overlaps pod and service networks", cidr: "10.0.0.0/8", cfg: Config{
		PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/56")},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
	}, wantWarnings: []string{
		"ipBlock.cidr: 10.0.0.0/8 overlaps the cluster's pod network 10.244.0.0/16: pod IPs change as pods come and go; use a namespace or service peer to reach pods",
		"ipBlock.cidr: 10.0.0.0/8 overlaps the cluster's Service network 10.96.0.0/12: NetworkPolicy sees the pod IP behind a Service's cluster IP, never the cluster IP; use a service peer instead",
	}},
	{name: "outside pod and service networks", cidr: "192.168.0.0/16", cfg: Config{
		PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
	}},
	{name: "IPv6 pod network", cidr: "fd00:10:244:1::/64", cfg: Config{
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/56")},
	}, wantWarnings: []string{
		"ipBlock.cidr: fd00:10:244:1::/64 overlaps the cluster's pod network fd00:10:244::/56: pod IPs change as pods come and go; use a namespace or service peer to reach pods",
	}},
	{name: "non-canonical IPv6", cidr: "2001:DB8::/32", except: []string{"2001:0db8:1::/48"}, wantWarnings: []string{
		`ipBlock.cidr: IPv6 CIDR value "2001:DB8::/32" should be in RFC 5952 canonical format ("2001:db8::/32")`,
		`ipBlock.except[0]: IPv6 CIDR value "2001:0db8:1::/48" should be in RFC 5952 canonical format ("2001:db8:1::/48")`,
	}},
}

var ipBlockPath = field.NewPath("ipBlock")

func TestValidateIPBlock(t *testing.T) {
	for _, tc := range ipBlockCases {
		t.Run(tc.name, func(t *testing.T) {
			errs, warnings := ValidateIPBlock(tc.cidr, tc.except, ipBlockPath, tc.cfg)
			checkFindings(t, errs, warnings, tc.wantErrs, tc.wantWarnings)
		})
	}
}

func TestValidateIPBlockPaths(t *testing.T) {
	// The path is the caller's: moat serve validates --allowed-ingress-cidrs
	// with a flag path, the webhooks with the ipBlock's path.
	flagPath := field.NewPath("--allowed-ingress-cidrs").Index(1)
	errs, warnings := ValidateIPBlock("10.0.0.1/8", nil, flagPath, Config{})
	want := field.ErrorList{field.Invalid(flagPath.Child("cidr"), "10.0.0.1/8",
		"must not have host bits set: use the network address 10.0.0.0/8, or 10.0.0.1/32 for the single address 10.0.0.1")}
	checkFindings(t, errs, warnings, want, nil)
	if diff := cmp.Diff("--allowed-ingress-cidrs[1].cidr", errs[0].Field); diff != "" {
		t.Errorf("field (-want +got):\n%s", diff)
	}
}

// TestCanonicalCIDR: the network NetworkPolicy implementations match, for
// what ValidateCIDR refuses only for its host bits; nothing for the rest.
func TestCanonicalCIDR(t *testing.T) {
	for _, tc := range []struct {
		cidr, want string // want "": not ok
	}{
		{"10.2.0.7/24", "10.2.0.0/24"},
		{"10.2.0.0/24", "10.2.0.0/24"},
		{"192.168.1.1/32", "192.168.1.1/32"},
		{"2001:DB8::1/64", "2001:db8::/64"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"", ""},
		{"10.300.0.0/16", ""},
		{"010.2.0.0/24", ""},
		{"::ffff:10.2.0.0/120", ""},
		{"10.2.0.7", ""},
		{" 10.2.0.0/24", ""},
	} {
		p, ok := CanonicalCIDR(tc.cidr)
		got := ""
		if ok {
			got = p.String()
		}
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("CanonicalCIDR(%q) = %q, %v; want %q", tc.cidr, got, ok, tc.want)
		}
		if ok {
			if _, errs := ValidateCIDR(got, nil); len(errs) > 0 {
				t.Errorf("CanonicalCIDR(%q) = %q, which ValidateCIDR refuses: %v", tc.cidr, got, errs)
			}
		}
	}
}

// TestValidateIPBlockExceptLimit: v1alpha1.MaxExcept except entries are
// accepted, one more is too many.
func TestValidateIPBlockExceptLimit(t *testing.T) {
	var except []string
	for i := range v1alpha1.MaxExcept + 1 {
		except = append(except, fmt.Sprintf("10.%d.0.0/16", i+1))
	}
	if errs, _ := ValidateIPBlock("10.0.0.0/8", except[:v1alpha1.MaxExcept], ipBlockPath, Config{}); len(errs) != 0 {
		t.Errorf("%d except entries: %v", v1alpha1.MaxExcept, errs)
	}
	errs, _ := ValidateIPBlock("10.0.0.0/8", except, ipBlockPath, Config{})
	want := field.ErrorList{field.TooMany(ipBlockPath.Child("except"), v1alpha1.MaxExcept+1, v1alpha1.MaxExcept)}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("%d except entries (-want +got):\n%s", v1alpha1.MaxExcept+1, diff)
	}
}
