package validation

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"

	"moat.dev/moat/api/v1alpha1"
)

// ValidateCIDR checks one CIDR string in the strict form that NetworkPolicy
// implementations agree on: it must parse, have no leading zeros, no host bits
// set beyond the prefix length, and not be an IPv4-mapped IPv6 address. When
// the list is empty the returned prefix is valid and already masked.
func ValidateCIDR(cidr string, fldPath *field.Path) (netip.Prefix, field.ErrorList) {
	p, errs := parseCIDR(cidr, fldPath)
	if len(errs) > 0 {
		return netip.Prefix{}, errs
	}
	if masked := p.Masked(); masked != p {
		single := netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
		return netip.Prefix{}, field.ErrorList{field.Invalid(fldPath, cidr, fmt.Sprintf(
			"must not have host bits set: use the network address %s, or %s for the single address %s", masked, single, p.Addr()))}
	}
	return p, nil
}

// CanonicalCIDR returns the network that NetworkPolicy implementations match
// for cidr, which ignore host bits: cidr with its host bits cleared, in
// canonical form. It is for converters that read CIDRs written for
// NetworkPolicy (moat import). ok is false when cidr is not a CIDR that
// ValidateCIDR accepts once its host bits are cleared (it does not parse, has
// leading zeros or is an IPv4-mapped IPv6 address; ValidateCIDR says why).
func CanonicalCIDR(cidr string) (p netip.Prefix, ok bool) {
	p, errs := parseCIDR(cidr, nil)
	if len(errs) > 0 {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

// parseCIDR parses cidr with the checks of ValidateCIDR but the host-bits
// one: the prefix it returns may have host bits set.
func parseCIDR(cidr string, fldPath *field.Path) (netip.Prefix, field.ErrorList) {
	if cidr == "" {
		return netip.Prefix{}, field.ErrorList{field.Required(fldPath, "set a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64")}
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return netip.Prefix{}, field.ErrorList{field.Invalid(fldPath, cidr, unparsableCIDRDetail(cidr))}
	}
	if p.Addr().Is4In6() {
		detail := "must not be an IPv4-mapped IPv6 address: write an IPv4 CIDR instead"
		if p.Bits() >= 96 {
			detail = fmt.Sprintf("must not be an IPv4-mapped IPv6 address: write the IPv4 CIDR %s", netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96))
		}
		return netip.Prefix{}, field.ErrorList{field.Invalid(fldPath, cidr, detail)}
	}
	return p, nil
}

// unparsableCIDRDetail explains why netip rejected a CIDR and how to write it.
func unparsableCIDRDetail(cidr string) string {
	if _, ipnet, err := netutils.ParseCIDRSloppy(cidr); err == nil {
		// The lenient legacy parser accepts it, the strict one does not: the
		// only difference between the two is leading zeros.
		return fmt.Sprintf("must not have leading zeros (some tools read them as octal): write %s", ipnet)
	}
	addrPart, bitsPart, hasSlash := strings.Cut(cidr, "/")
	addr, addrErr := netip.ParseAddr(addrPart)
	if addrErr == nil && addr.Zone() == "" && !addr.Is4In6() {
		if !hasSlash {
			return fmt.Sprintf("is an address, not a CIDR: add a prefix length, e.g. %s for this single address", netip.PrefixFrom(addr, addr.BitLen()))
		}
		if bits, err := strconv.Atoi(bitsPart); err == nil && bits > addr.BitLen() && bitsPart[0] != '+' {
			family := "IPv4"
			if addr.Is6() {
				family = "IPv6"
			}
			return fmt.Sprintf("prefix length %d is too long: an %s prefix length is at most %d", bits, family, addr.BitLen())
		}
	}
	return "must be a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64"
}

// ValidateIPBlock checks an ipBlock-style network: cidr and each except entry
// must be valid CIDRs (see ValidateCIDR) and every except entry must be of
// cidr's address family and strictly inside it. fldPath is the path of the
// ipBlock itself; errors name fldPath.cidr and fldPath.except[i].
//
// Warnings flag blocks that are valid but
// probably not what the user means: the whole address space, overlap with the
// cluster's pod or Service networks from cfg, and IPv6 written in a
// non-canonical form.
func ValidateIPBlock(cidr string, except []string, fldPath *field.Path, cfg Config) (field.ErrorList, []Warning) {
	cidrPath := fldPath.Child("cidr")
	parent, errs := ValidateCIDR(cidr, cidrPath)
	var warnings []Warning
	if len(errs) == 0 {
		warnings = cidrWarnings(parent, cidr, cidrPath, cfg)
	}

	exceptPath := fldPath.Child("except")
	if len(except) > v1alpha1.MaxExcept {
		errs = append(errs, field.TooMany(exceptPath, len(except), v1alpha1.MaxExcept))
	}
	for i, e := range except {
		p := exceptPath.Index(i)
		hole, holeErrs := ValidateCIDR(e, p)
		if len(holeErrs) > 0 {
			errs = append(errs, holeErrs...)
			continue
		}
		warnings = append(warnings, libraryWarnings(p, utilvalidation.GetWarningsForCIDR(p, e))...)
		if !parent.IsValid() {
			continue
		}
		switch {
		case hole.Addr().Is4() != parent.Addr().Is4():
			errs = append(errs, field.Invalid(p, e, fmt.Sprintf(
				"is %s but cidr %s is %s: an except entry must be a smaller network of the same family inside cidr", family(hole), parent, family(parent))))
		case hole == parent:
			errs = append(errs, field.Invalid(p, e, fmt.Sprintf(
				"equals cidr %s, which would leave no address at all: make it a smaller network inside cidr, or remove the peer", parent)))
		case hole.Bits() > parent.Bits() && parent.Contains(hole.Addr()):
			// Strictly inside: fine.
		case hole.Bits() < parent.Bits() && hole.Contains(parent.Addr()):
			errs = append(errs, field.Invalid(p, e, fmt.Sprintf(
				"is wider than cidr %s: an except entry must be a smaller network inside cidr", parent)))
		default:
			errs = append(errs, field.Invalid(p, e, fmt.Sprintf(
				"lies outside cidr %s: except can only remove addresses inside cidr; remove this entry or widen cidr", parent)))
		}
	}
	return errs, warnings
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// cidrWarnings returns the warnings for a valid, masked cidr.
func cidrWarnings(p netip.Prefix, cidr string, fldPath *field.Path, cfg Config) []Warning {
	var warnings []Warning
	if p.Bits() == 0 {
		warnings = append(warnings, newWarning(fldPath, fmt.Sprintf(
			"%s matches every %s address, which depending on the network plugin includes the pods of every project: list the external networks you mean instead",
			p, family(p))))
	} else {
		for _, pods := range cfg.PodCIDRs {
			if p.Overlaps(pods) {
				warnings = append(warnings, newWarning(fldPath, fmt.Sprintf(
					"%s overlaps the cluster's pod network %s: pod IPs change as pods come and go; use a namespace or service peer to reach pods",
					p, pods)))
			}
		}
		for _, services := range cfg.ServiceCIDRs {
			if p.Overlaps(services) {
				warnings = append(warnings, newWarning(fldPath, fmt.Sprintf(
					"%s overlaps the cluster's Service network %s: NetworkPolicy sees the pod IP behind a Service's cluster IP, never the cluster IP; use a service peer instead",
					p, services)))
			}
		}
	}
	return append(warnings, libraryWarnings(fldPath, utilvalidation.GetWarningsForCIDR(fldPath, cidr))...)
}
