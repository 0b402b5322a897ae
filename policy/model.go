package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"moat.dev/moat/api/v1alpha1"
)

// Model is what one project admits: per direction, every admitted peer with
// its ports and its provenance. Compute builds it once from the
// configuration, the stored Namespace, its allowlists and the cluster facts;
// every face of moat is derived from it: the NetworkPolicies (Render), the
// allowlists' status, and the tenant rule (a tenant NetworkPolicy may admit
// no more than the model, ports included: see Covering and CoversPort).
type Model struct {
	// Namespace is the project's namespace.
	Namespace string
	// Enforced is false when the namespace is not isolated or is
	// protected: moat then enforces nothing there, and Ingress and Egress
	// are empty.
	Enforced bool
	// Ingress is everything that may reach the project's pods. The
	// admissions moat grants through its flags and the isolation itself
	// come first (in the order of moat-default-ingress), then the
	// allowlists' by allowlist name and rule.
	Ingress []Admission
	// EgressRestricted is true once an allowlist of the project declares an
	// egress rule; until then egress is open and Egress is empty.
	EgressRestricted bool
	// Egress is everything the project's pods may reach while
	// EgressRestricted, in the same order as Ingress.
	Egress []Admission
	// Allowlists holds one entry per allowlist of the input, sorted by name.
	Allowlists []AllowlistModel
}

// AllowlistModel is what the model says of one allowlist.
type AllowlistModel struct {
	Name string
	UID  types.UID
	// Ingress and Egress say whether the allowlist declares rules of that
	// direction (its policy's policyTypes), whether or not any peer of
	// them could be translated.
	Ingress, Egress bool
	// Policy is the name of the NetworkPolicy generated from the
	// allowlist; empty when there is none (no rules, isolation off, or the
	// name is taken).
	Policy string
	// Problems say why parts of the allowlist are not in force.
	Problems []Problem
}

// Admission is one admitted peer: the traffic that Peer may send (ingress)
// or receive (egress) on Ports.
type Admission struct {
	Peer Peer
	// Ports are the admitted ports; nil means every port of every protocol.
	Ports []networkingv1.NetworkPolicyPort
	// Source says why the peer is admitted.
	Source Source
}

// PeerKind is the kind of an admitted peer.
type PeerKind string

const (
	// PeerSelf is every pod of the project's own namespace.
	PeerSelf PeerKind = "Self"
	// PeerNamespace is every pod of the namespace Peer.Namespace.
	PeerNamespace PeerKind = "Namespace"
	// PeerGroup is every pod of every namespace whose label Peer.Label has
	// the value Peer.Value (a project group, --project-label).
	PeerGroup PeerKind = "Group"
	// PeerPods is the pods that Peer.Selector selects in Peer.Namespace
	// (the pods of a Service, or the cluster DNS pods).
	PeerPods PeerKind = "Pods"
	// PeerAddresses is Peer.CIDR minus Peer.Except: addresses outside the
	// cluster, node addresses, API server endpoints, DNS caches.
	PeerAddresses PeerKind = "Addresses"
)

// Peer is what an admission admits.
type Peer struct {
	Kind PeerKind
	// Namespace is set for PeerNamespace and PeerPods.
	Namespace string
	// Label and Value are set for PeerGroup.
	Label, Value string
	// Selector is set for PeerPods; never empty.
	Selector map[string]string
	// CIDR and Except are set for PeerAddresses, as declared (validation
	// requires canonical forms).
	CIDR   string
	Except []string
}

// Flags of moat serve that admit peers, as Source.Flag names them.
const (
	FlagAllowedIngressNamespaces = "--allowed-ingress-namespaces"
	FlagAllowedIngressCIDRs      = "--allowed-ingress-cidrs"
	FlagProjectLabel             = "--project-label"
	FlagAllowIngressFromNodes    = "--allow-ingress-from-nodes"
	FlagDNSService               = "--dns-service"
	FlagDNSIPs                   = "--dns-ips"
)

// Source is the provenance of an admission: a flag of moat serve, an
// allowlist rule, or (both empty) the isolation itself, which always admits
// the project's own namespace.
type Source struct {
	// Flag is the moat serve flag that admits the peer (Flag* constants).
	Flag string `json:"flag,omitempty"`
	// Allowlist is the name of the allowlist that admits the peer; Rule
	// the index of its rule in the direction's list, Field the path of
	// the peer, e.g. spec.ingress[0].from[1].
	Allowlist string `json:"allowlist,omitempty"`
	Rule      int    `json:"rule,omitempty"`
	Field     string `json:"field,omitempty"`
}

// String names the source for a human: "allowlist web (spec.ingress[0].from[1])",
// "moat serve --dns-ips" or "the namespace's isolation".
func (s Source) String() string {
	switch {
	case s.Allowlist != "":
		return fmt.Sprintf("allowlist %s (%s)", s.Allowlist, s.Field)
	case s.Flag != "":
		return "moat serve " + s.Flag
	default:
		return "the namespace's isolation"
	}
}

// Describe names the peer for a human, e.g. "namespace demo-project-2",
// "pods app=web in namespace other", "10.0.0.0/8 except 10.1.0.0/16".
func (p Peer) Describe() string {
	switch p.Kind {
	case PeerSelf:
		return "the namespace itself"
	case PeerNamespace:
		return "namespace " + p.Namespace
	case PeerGroup:
		return fmt.Sprintf("project group %s=%s", p.Label, p.Value)
	case PeerPods:
		return fmt.Sprintf("pods %s in namespace %s", metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: p.Selector}), p.Namespace)
	default:
		if len(p.Except) == 0 {
			return p.CIDR
		}
		return p.CIDR + " except " + strings.Join(p.Except, ", ")
	}
}

// NetworkPolicyPeer is the peer as a NetworkPolicy selects it. Namespaces are
// selected by the immutable kubernetes.io/metadata.name label; a group by its
// guarded project label.
func (p Peer) NetworkPolicyPeer() networkingv1.NetworkPolicyPeer {
	switch p.Kind {
	case PeerSelf:
		return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}
	case PeerNamespace:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: namespaceSelector(p.Namespace)}
	case PeerGroup:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{p.Label: p.Value}}}
	case PeerPods:
		return networkingv1.NetworkPolicyPeer{
			NamespaceSelector: namespaceSelector(p.Namespace),
			PodSelector:       &metav1.LabelSelector{MatchLabels: maps.Clone(p.Selector)},
		}
	default:
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: p.CIDR, Except: cloneNonEmpty(p.Except)}}
	}
}

// NarrowestModel is the least that any isolated namespace admits: its own
// namespace, in both directions, egress restricted. A NetworkPolicy that
// stays inside it stays inside every model of that namespace.
func NarrowestModel(namespace string) Model {
	self := []Admission{{Peer: Peer{Kind: PeerSelf}}}
	return Model{Namespace: namespace, Enforced: true, Ingress: self, EgressRestricted: true, Egress: self}
}

// Compute is the one computation of what the project of in admits under cfg.
// It is deterministic (allowlists in any order give the same model) and
// pure: Services are looked up through services, each at most once (nil: a
// cluster without Services). It returns an error only when a lookup fails.
//
// A nil, non-isolated or protected Namespace yields a model that enforces
// nothing, whose allowlists report IsolationDisabled or NamespaceProtected.
func Compute(in Input, services Services, cfg Config) (Model, error) {
	allowlists := uniqueAllowlists(in.Allowlists)
	m := Model{Allowlists: make([]AllowlistModel, 0, len(allowlists))}
	if in.Namespace != nil {
		m.Namespace = in.Namespace.Name
	}
	var off *Problem
	switch {
	case !v1alpha1.Isolated(in.Namespace):
		p := isolationDisabled(in.Namespace)
		off = &p
	case Protected(in.Namespace, cfg):
		p := ProtectedProblem(in.Namespace.Name)
		off = &p
	}
	if off != nil {
		for _, al := range allowlists {
			m.Allowlists = append(m.Allowlists, AllowlistModel{Name: al.Name, UID: al.UID, Problems: []Problem{*off}})
		}
		return m, nil
	}

	m.Enforced = true
	r := &renderer{namespace: in.Namespace.Name, services: services, cache: map[serviceKey]*corev1.Service{},
		projectLabel: cfg.ProjectLabel, apiServer: in.APIServer}
	m.Ingress = defaultIngress(in, cfg)
	// Policy names in use, by the allowlist that has them ("" for a
	// default policy). Distinct allowlist names can map to one policy name
	// once PolicyName truncates and hashes a long name: the first
	// allowlist by name keeps it, the others get none and report the
	// conflict, so that no two desired policies share a name.
	owner := map[string]string{DefaultIngressPolicyName: ""}
	if declaresEgress(allowlists) {
		m.EgressRestricted = true
		egress, err := r.defaultEgress(cfg)
		if err != nil {
			return Model{}, err
		}
		m.Egress = egress
		owner[DefaultEgressPolicyName] = ""
	}
	for _, al := range allowlists {
		am := AllowlistModel{Name: al.Name, UID: al.UID, Ingress: len(al.Spec.Ingress) > 0, Egress: len(al.Spec.Egress) > 0}
		if !am.Ingress && !am.Egress {
			m.Allowlists = append(m.Allowlists, am)
			continue
		}
		t := &translation{renderer: r, allowlist: al.Name, serviceNamespace: al.Namespace}
		if t.serviceNamespace == "" {
			t.serviceNamespace = r.namespace
		}
		ingress, egress, err := t.admissions(al.Spec)
		if err != nil {
			return Model{}, err
		}
		am.Problems = t.problems
		name := PolicyName(al.Name)
		if other, taken := owner[name]; taken {
			am.Problems = append(am.Problems, nameTaken(name, other))
		} else {
			owner[name] = al.Name
			am.Policy = name
			m.Ingress = append(m.Ingress, ingress...)
			m.Egress = append(m.Egress, egress...)
		}
		m.Allowlists = append(m.Allowlists, am)
	}
	return m, nil
}

// defaultIngress is what the isolation admits into every isolated
// namespace, in this order: the same namespace; its project group, when
// cfg.ProjectLabel is set, the namespace carries it and does not turn its
// group away (v1alpha1.AdmitsGroup); each allowed
// namespace and each allowed CIDR (sorted, duplicates removed); with
// cfg.AllowIngressFromNodes, each node address (sorted, duplicates removed)
// as a /32 or /128. Every port.
func defaultIngress(in Input, cfg Config) []Admission {
	out := []Admission{{Peer: Peer{Kind: PeerSelf}}}
	if project, ok := v1alpha1.ProjectOf(in.Namespace, cfg.ProjectLabel); ok && v1alpha1.AdmitsGroup(in.Namespace) {
		out = append(out, Admission{Peer: Peer{Kind: PeerGroup, Label: cfg.ProjectLabel, Value: project}, Source: Source{Flag: FlagProjectLabel}})
	}
	for _, ns := range sortedUnique(cfg.AllowedIngressNamespaces) {
		out = append(out, Admission{Peer: Peer{Kind: PeerNamespace, Namespace: ns}, Source: Source{Flag: FlagAllowedIngressNamespaces}})
	}
	for _, cidr := range sortedUnique(cfg.AllowedIngressCIDRs) {
		out = append(out, Admission{Peer: Peer{Kind: PeerAddresses, CIDR: cidr}, Source: Source{Flag: FlagAllowedIngressCIDRs}})
	}
	if cfg.AllowIngressFromNodes {
		for _, addr := range sortedAddrs(in.NodeAddresses) {
			out = append(out, Admission{Peer: hostAddresses(addr), Source: Source{Flag: FlagAllowIngressFromNodes}})
		}
	}
	return out
}

// hostAddresses is a peer of exactly one address: /32 or /128.
func hostAddresses(addr netip.Addr) Peer {
	return Peer{Kind: PeerAddresses, CIDR: netip.PrefixFrom(addr, addr.BitLen()).String()}
}
