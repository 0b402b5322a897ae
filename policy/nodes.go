package policy

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// DefaultNodeAddressTypes are the Node status address types that count as a
// node's addresses when Config.NodeAddressTypes is empty.
var DefaultNodeAddressTypes = []corev1.NodeAddressType{corev1.NodeInternalIP}

// NodeAddresses returns the addresses that traffic from the nodes may come
// from, sorted and without duplicates: each node's status addresses of the
// configured types (cfg.NodeAddressTypes, default InternalIP) and the
// addresses in the values of the configured annotations
// (cfg.NodeAddressAnnotations). An annotation value may hold several
// addresses separated by commas or blanks, each optionally with a prefix
// length (10.0.0.5/24, as Calico writes it: the address counts, not the
// network). Values that are not addresses (host names) are ignored. Nil
// nodes are skipped.
func NodeAddresses(nodes []*corev1.Node, cfg Config) []netip.Addr {
	types := cfg.NodeAddressTypes
	if len(types) == 0 {
		types = DefaultNodeAddressTypes
	}
	var out []netip.Addr
	for _, node := range nodes {
		if node == nil {
			continue
		}
		for _, a := range node.Status.Addresses {
			if slices.Contains(types, a.Type) {
				out = appendAddr(out, a.Address)
			}
		}
		for _, key := range cfg.NodeAddressAnnotations {
			value, ok := node.Annotations[key]
			if !ok {
				continue
			}
			for _, item := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
				out = appendAddr(out, item)
			}
		}
	}
	return sortedAddrs(out)
}

// appendAddr appends the address that s writes, alone or with a prefix
// length; anything else is ignored.
func appendAddr(addrs []netip.Addr, s string) []netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return append(addrs, a)
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return append(addrs, p.Addr())
	}
	return addrs
}
