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
// nodes are skipped. The bounds of BoundedNodeAddresses apply.
func NodeAddresses(nodes []*corev1.Node, cfg Config) []netip.Addr {
	addrs, _ := BoundedNodeAddresses(nodes, cfg)
	return addrs
}

// NodeAddressOverflow says what the node address bounds left out.
type NodeAddressOverflow struct {
	// Nodes names the nodes that offered more addresses than
	// cfg.MaxNodeAddressesPerNode, sorted; only their first addresses (status
	// addresses first, then annotations in the configured order) count.
	Nodes []string
	// Dropped counts the distinct addresses left out past
	// cfg.MaxNodeAddresses (the highest, in address order).
	Dropped int
}

// Empty reports whether nothing was left out.
func (o NodeAddressOverflow) Empty() bool { return len(o.Nodes) == 0 && o.Dropped == 0 }

// BoundedNodeAddresses is NodeAddresses with what its bounds left out. Each
// node contributes at most cfg.MaxNodeAddressesPerNode addresses and reading
// a node stops there, so a huge annotation costs no more than a small one;
// all nodes together at most cfg.MaxNodeAddresses. Cost is linear in the
// addresses read.
func BoundedNodeAddresses(nodes []*corev1.Node, cfg Config) ([]netip.Addr, NodeAddressOverflow) {
	types := cfg.NodeAddressTypes
	if len(types) == 0 {
		types = DefaultNodeAddressTypes
	}
	perNode := cfg.MaxNodeAddressesPerNode
	if perNode <= 0 {
		perNode = DefaultMaxNodeAddressesPerNode
	}
	total := cfg.MaxNodeAddresses
	if total <= 0 {
		total = DefaultMaxNodeAddresses
	}
	var (
		out      []netip.Addr
		overflow NodeAddressOverflow
	)
	for _, node := range nodes {
		if node == nil {
			continue
		}
		n := nodeReader{limit: perNode}
		for _, a := range node.Status.Addresses {
			if slices.Contains(types, a.Type) {
				n.add(a.Address)
			}
		}
		for _, key := range cfg.NodeAddressAnnotations {
			value, ok := node.Annotations[key]
			if !ok {
				continue
			}
			for item := range strings.FieldsFuncSeq(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
				if n.over {
					break
				}
				n.add(item)
			}
		}
		if n.over {
			overflow.Nodes = append(overflow.Nodes, node.Name)
		}
		out = append(out, n.addrs...)
	}
	out = sortedAddrs(out)
	if len(out) > total {
		overflow.Dropped = len(out) - total
		out = out[:total]
	}
	slices.Sort(overflow.Nodes)
	return out, overflow
}

// nodeReader collects one node's distinct addresses up to limit; over says
// that the node offered more.
type nodeReader struct {
	limit int
	addrs []netip.Addr
	seen  map[netip.Addr]bool
	over  bool
}

func (n *nodeReader) add(s string) {
	if n.over {
		return
	}
	before := len(n.addrs)
	n.addrs = appendAddr(n.addrs, s)
	if len(n.addrs) == before {
		return
	}
	added := n.addrs[before].Unmap().WithZone("")
	n.addrs[before] = added
	if n.seen[added] {
		n.addrs = n.addrs[:before]
		return
	}
	if n.seen == nil {
		n.seen = map[netip.Addr]bool{}
	}
	n.seen[added] = true
	if len(n.addrs) > n.limit {
		n.addrs, n.over = n.addrs[:n.limit], true
	}
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
