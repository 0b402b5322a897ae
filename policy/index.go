package policy

import (
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModelIndex answers Selections for one model from indexes of its
// admissions (by namespace, by group label and value, by admitted address
// prefix), so that a question costs what it returns rather than a scan of
// every admission. Build it once (Model.Index, linear in the admissions) to
// check many NetworkPolicies against one model, as moat validate does for
// every tenant policy of a namespace. It is read-only once built.
type ModelIndex struct {
	// Model is the model indexed; it must not be modified.
	Model           Model
	ingress, egress admissionIndex
}

// Index builds the index of the model.
func (m Model) Index() *ModelIndex {
	return &ModelIndex{Model: m, ingress: newAdmissionIndex(m.Ingress), egress: newAdmissionIndex(m.Egress)}
}

// Selections is Model.Selections, with the same result.
func (x *ModelIndex) Selections(egress bool, peer networkingv1.NetworkPolicyPeer) []Selection {
	h := &x.ingress
	if egress {
		h = &x.egress
	}
	return selections(x.Model.Namespace, h, peer)
}

// admissionIndex holds the positions of the admissions of one direction by
// what they admit; holdsPods, holdsGroup and holdsBlock then decide among
// those, as for scan.
type admissionIndex struct {
	admissions []Admission
	self       []int
	// byNamespace: PeerNamespace and PeerPods admissions.
	byNamespace map[string][]int
	byGroup     map[[2]string][]int
	// byPrefix: PeerAddresses admissions by their masked CIDR.
	byPrefix map[netip.Prefix][]int
}

func newAdmissionIndex(admissions []Admission) admissionIndex {
	x := admissionIndex{admissions: admissions, byNamespace: map[string][]int{}, byGroup: map[[2]string][]int{}, byPrefix: map[netip.Prefix][]int{}}
	for i, a := range admissions {
		switch a.Peer.Kind {
		case PeerSelf:
			x.self = append(x.self, i)
		case PeerNamespace, PeerPods:
			x.byNamespace[a.Peer.Namespace] = append(x.byNamespace[a.Peer.Namespace], i)
		case PeerGroup:
			k := [2]string{a.Peer.Label, a.Peer.Value}
			x.byGroup[k] = append(x.byGroup[k], i)
		case PeerAddresses:
			if p, err := netip.ParsePrefix(a.Peer.CIDR); err == nil {
				x.byPrefix[p.Masked()] = append(x.byPrefix[p.Masked()], i)
			}
		}
	}
	return x
}

func (x *admissionIndex) pods(self, name string, podSelector *metav1.LabelSelector) []Admission {
	var at []int
	if name == self {
		at = append(at, x.self...)
	}
	at = sortedPositions(append(at, x.byNamespace[name]...))
	return filter(x.admissions, at, func(a *Admission) bool { return holdsPods(a, self, name, podSelector) })
}

func (x *admissionIndex) group(selector *metav1.LabelSelector) []Admission {
	var at []int
	for k, v := range selector.MatchLabels {
		at = append(at, x.byGroup[[2]string{k, v}]...)
	}
	return filter(x.admissions, sortedPositions(at), func(a *Admission) bool { return holdsGroup(a, selector) })
}

// block looks up every prefix that holds the block's cidr: at most 33
// (IPv4) or 129 (IPv6) lookups.
func (x *admissionIndex) block(block *networkingv1.IPBlock) []Admission {
	cidr, except, ok := parseBlock(block)
	if !ok {
		return nil
	}
	var at []int
	for bits := 0; bits <= cidr.Bits(); bits++ {
		outer, err := cidr.Addr().Prefix(bits)
		if err == nil {
			at = append(at, x.byPrefix[outer]...)
		}
	}
	return filter(x.admissions, sortedPositions(at), func(a *Admission) bool { return holdsBlock(a, cidr, except) })
}

// sortedPositions sorts positions and drops repeats; never nil, so that
// filter reads only these positions.
func sortedPositions(at []int) []int {
	if at == nil {
		return []int{}
	}
	slices.Sort(at)
	return slices.Compact(at)
}
