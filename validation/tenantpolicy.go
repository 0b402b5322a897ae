package validation

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

// TenantPolicyMode says what happens to a NetworkPolicy that admits traffic
// beyond what moat admits in an isolated namespace (moat serve
// --tenant-network-policies).
type TenantPolicyMode string

const (
	// TenantPoliciesRestrict refuses such a policy (the default).
	TenantPoliciesRestrict TenantPolicyMode = "restrict"
	// TenantPoliciesWarn admits it with a warning.
	TenantPoliciesWarn TenantPolicyMode = "warn"
	// TenantPoliciesOff does not check NetworkPolicies against isolation.
	TenantPoliciesOff TenantPolicyMode = "off"
)

// TenantPolicyModes lists the valid modes, the default first.
var TenantPolicyModes = []TenantPolicyMode{TenantPoliciesRestrict, TenantPoliciesWarn, TenantPoliciesOff}

// ParseTenantPolicyMode returns the mode named s, or an error that lists the
// valid ones.
func ParseTenantPolicyMode(s string) (TenantPolicyMode, error) {
	if m := TenantPolicyMode(s); slices.Contains(TenantPolicyModes, m) {
		return m, nil
	}
	return "", fmt.Errorf("%q is not a tenant NetworkPolicy mode: use restrict (refuse policies that open an isolated namespace), warn (admit them with a warning) or off", s)
}

// Effective returns the mode, with "" meaning TenantPoliciesRestrict.
func (m TenantPolicyMode) Effective() TenantPolicyMode {
	if m == "" {
		return TenantPoliciesRestrict
	}
	return m
}

// Findings splits the errors of ValidateTenantNetworkPolicy by mode:
// errors under restrict, warnings under warn, nothing under off.
func (m TenantPolicyMode) Findings(errs field.ErrorList) (field.ErrorList, []Warning) {
	switch m.Effective() {
	case TenantPoliciesRestrict:
		return errs, nil
	case TenantPoliciesWarn:
		warnings := make([]Warning, 0, len(errs))
		for _, e := range errs {
			warnings = append(warnings, Warning{Field: e.Field, Detail: e.Detail})
		}
		return nil, warnings
	default:
		return nil, nil
	}
}

// IsolationBaseline is what moat admits in every isolated namespace whatever
// its allowlists say: moat serve's --allowed-ingress-namespaces,
// --allowed-ingress-cidrs and --dns-service.
type IsolationBaseline struct {
	AllowedIngressNamespaces []string
	AllowedIngressCIDRs      []string
	// DNSService is the cluster DNS Service whose pods stay reachable once
	// egress is restricted; nil when that exception is off.
	DNSService *types.NamespacedName
	// DNSIPs are the node-local DNS caches that stay reachable once egress
	// is restricted (--dns-ips).
	DNSIPs []netip.Addr
}

// TenantScope is what moat admits into and out of one isolated namespace.
// A NetworkPolicy there may admit no more (ValidateTenantNetworkPolicy).
type TenantScope struct {
	// Namespace is the isolated namespace.
	Namespace string
	// Ingress is what may reach the namespace's pods.
	Ingress PeerScope
	// Egress is what the namespace's pods may reach; nil while moat leaves
	// egress open (no allowlist declares an egress rule).
	Egress *PeerScope
}

// PeerScope is a set of traffic peers: whole namespaces, the pods of a
// Service, address blocks, and project groups (the namespaces whose
// ProjectLabel has one of Projects' values).
type PeerScope struct {
	Namespaces []string
	Pods       []PodScope
	IPBlocks   []AddressScope
	// ProjectLabel is moat's --project-label; Projects are admitted values.
	ProjectLabel string
	Projects     []string
}

// PodScope is the pods that Selector selects in Namespace.
type PodScope struct {
	Namespace string
	Selector  map[string]string
}

// AddressScope is CIDR minus Except.
type AddressScope struct {
	CIDR   netip.Prefix
	Except []netip.Prefix
}

// NewTenantScope returns what moat admits in the isolated namespace ns with
// the given allowlists: the namespace itself, cfg.Isolation, and every peer
// the allowlists declare. Service peers are looked up in cluster (nil: none
// is found); a Service that is missing, has no selector or cannot be looked
// up admits nothing, as in the policies moat generates.
func NewTenantScope(ns *corev1.Namespace, allowlists []*v1alpha1.NetworkAllowlist, cfg Config, cluster Cluster) TenantScope {
	scope := TenantScope{Namespace: ns.Name}
	scope.Ingress.Namespaces = append([]string{ns.Name}, cfg.Isolation.AllowedIngressNamespaces...)
	scope.Ingress.ProjectLabel = cfg.ProjectLabel
	if group, ok := v1alpha1.ProjectOf(ns, cfg.ProjectLabel); ok {
		// The namespaces of its own group, as moat's default ingress policy.
		scope.Ingress.Projects = append(scope.Ingress.Projects, group)
	}
	for _, cidr := range cfg.Isolation.AllowedIngressCIDRs {
		if p, err := netip.ParsePrefix(cidr); err == nil {
			scope.Ingress.IPBlocks = append(scope.Ingress.IPBlocks, AddressScope{CIDR: p.Masked()})
		}
	}
	if v1alpha1.RestrictsEgress(allowlists) {
		scope.Egress = &PeerScope{Namespaces: []string{ns.Name}, ProjectLabel: cfg.ProjectLabel}
		if dns := cfg.Isolation.DNSService; dns != nil {
			scope.Egress.addService(cluster, dns.Namespace, dns.Name)
		}
		for _, ip := range cfg.Isolation.DNSIPs {
			scope.Egress.IPBlocks = append(scope.Egress.IPBlocks, AddressScope{CIDR: netip.PrefixFrom(ip, ip.BitLen())})
		}
	}
	for _, al := range allowlists {
		if al == nil {
			continue
		}
		for _, rule := range al.Spec.Ingress {
			scope.Ingress.addPeers(cluster, al.Namespace, rule.From)
		}
		if scope.Egress != nil {
			for _, rule := range al.Spec.Egress {
				scope.Egress.addPeers(cluster, al.Namespace, rule.To)
			}
		}
	}
	return scope
}

func (s *PeerScope) addPeers(cluster Cluster, namespace string, peers []v1alpha1.Peer) {
	for _, p := range peers {
		kind, ok := p.Kind()
		if !ok {
			continue
		}
		switch kind {
		case v1alpha1.PeerNamespace:
			s.Namespaces = append(s.Namespaces, p.Namespace)
		case v1alpha1.PeerProject:
			s.Projects = append(s.Projects, p.Project)
		case v1alpha1.PeerService:
			s.addService(cluster, p.Service.NamespaceIn(namespace), p.Service.Name)
		case v1alpha1.PeerIPBlock:
			cidr, err := netip.ParsePrefix(p.IPBlock.CIDR)
			if err != nil {
				continue
			}
			block := AddressScope{CIDR: cidr.Masked()}
			for _, e := range p.IPBlock.Except {
				if ex, err := netip.ParsePrefix(e); err == nil {
					block.Except = append(block.Except, ex.Masked())
				}
			}
			s.IPBlocks = append(s.IPBlocks, block)
		}
		// kubernetesAPI peers follow the API server's endpoints, which
		// this check does not read: a tenant policy naming them is refused.
	}
}

func (s *PeerScope) addService(cluster Cluster, namespace, name string) {
	if cluster == nil {
		return
	}
	svc, err := cluster.Service(namespace, name)
	if err != nil || svc == nil || len(svc.Spec.Selector) == 0 {
		return
	}
	s.Pods = append(s.Pods, PodScope{Namespace: namespace, Selector: svc.Spec.Selector})
}

// ValidateTenantNetworkPolicy refuses a NetworkPolicy that would undo moat's
// isolation of its namespace ns: NetworkPolicies add up, so a policy that
// admits ingress from beyond what moat admits (an empty from, a
// namespaceSelector that is not pinned by kubernetes.io/metadata.name to an
// admitted namespace, an ipBlock that no admitted block covers) opens the
// project again; once moat restricts the namespace's egress, the same holds
// for egress. Each error is Forbidden at the offending peer (or at the empty
// from/to list) and says to declare the traffic in a NetworkAllowlist.
//
// It says nothing when ns is nil, not isolated or protected, or when np is
// nil; ports are not compared, only peers. The caller decides who is exempt
// (moat and the admin groups) and applies the mode (TenantPolicyMode.Findings).
func ValidateTenantNetworkPolicy(np *networkingv1.NetworkPolicy, ns *corev1.Namespace, allowlists []*v1alpha1.NetworkAllowlist, cfg Config, cluster Cluster) field.ErrorList {
	if np == nil || ns == nil || cfg.TenantNetworkPolicies.Effective() == TenantPoliciesOff ||
		v1alpha1.IsProtectedNamespace(ns.Name, cfg.ProtectedNamespaces) {
		return nil
	}
	if !v1alpha1.Isolated(ns) {
		return nil
	}
	return ValidateTenantNetworkPolicyInScope(np, NewTenantScope(ns, allowlists, cfg, cluster))
}

// ValidateTenantNetworkPolicyInScope is ValidateTenantNetworkPolicy with
// what moat admits already worked out. A scope that admits more never
// yields more errors.
func ValidateTenantNetworkPolicyInScope(np *networkingv1.NetworkPolicy, scope TenantScope) field.ErrorList {
	if np == nil {
		return nil
	}
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	for i := range np.Spec.Ingress {
		fromPath := specPath.Child("ingress").Index(i).Child("from")
		errs = append(errs, scope.Ingress.check(np.Spec.Ingress[i].From, fromPath, scope.Namespace, "ingress from")...)
	}
	if scope.Egress != nil {
		for i := range np.Spec.Egress {
			toPath := specPath.Child("egress").Index(i).Child("to")
			errs = append(errs, scope.Egress.check(np.Spec.Egress[i].To, toPath, scope.Namespace, "egress to")...)
		}
	}
	return errs
}

// check returns an error for every peer outside the scope.
func (s *PeerScope) check(peers []networkingv1.NetworkPolicyPeer, fldPath *field.Path, namespace, direction string) field.ErrorList {
	fix := fmt.Sprintf("; NetworkPolicies add up, so this would undo moat's isolation of namespace %s: declare the peer in a NetworkAllowlist "+
		"(the audited path), or ask a member of moat's admin groups to create this policy", namespace)
	if len(peers) == 0 {
		return field.ErrorList{field.Forbidden(fldPath, fmt.Sprintf("an empty list admits %s everywhere (every pod of every namespace and every address)", direction)+fix)}
	}
	var errs field.ErrorList
	for j := range peers {
		peer := &peers[j]
		peerPath := fldPath.Index(j)
		switch {
		case peer.IPBlock != nil:
			if !s.coversBlock(peer.IPBlock) {
				errs = append(errs, field.Forbidden(peerPath.Child("ipBlock"),
					fmt.Sprintf("admits %s %s, which moat does not admit", direction, describeBlock(peer.IPBlock))+fix))
			}
		case peer.NamespaceSelector != nil:
			if s.coversProject(peer.NamespaceSelector) {
				continue
			}
			names, pinned := pinnedNamespaces(peer.NamespaceSelector)
			if !pinned {
				errs = append(errs, field.Forbidden(peerPath.Child("namespaceSelector"),
					fmt.Sprintf("admits %s every namespace whose labels match; pin it to one namespace with the %s label", direction, v1alpha1.NamespaceNameLabel)+fix))
				continue
			}
			for _, name := range names {
				if !s.coversNamespace(name, peer.PodSelector) {
					errs = append(errs, field.Forbidden(peerPath.Child("namespaceSelector"),
						fmt.Sprintf("admits %s namespace %s, which moat does not admit", direction, name)+fix))
					break
				}
			}
		}
		// A podSelector alone selects pods of the policy's own namespace.
	}
	return errs
}

// coversProject reports whether selector selects only namespaces of an
// admitted project group: it requires the project label to equal one of
// Projects (other terms of a selector only narrow it).
func (s *PeerScope) coversProject(selector *metav1.LabelSelector) bool {
	if s.ProjectLabel == "" {
		return false
	}
	value, ok := selector.MatchLabels[s.ProjectLabel]
	return ok && value != "" && slices.Contains(s.Projects, value)
}

// coversNamespace reports whether the pods that podSelector selects in the
// named namespace are all inside the scope.
func (s *PeerScope) coversNamespace(name string, podSelector *metav1.LabelSelector) bool {
	if slices.Contains(s.Namespaces, name) {
		return true
	}
	if podSelector == nil {
		return false
	}
	for _, pods := range s.Pods {
		if pods.Namespace != name {
			continue
		}
		narrower := true
		for k, v := range pods.Selector {
			if got, ok := podSelector.MatchLabels[k]; !ok || got != v {
				narrower = false
				break
			}
		}
		if narrower {
			return true
		}
	}
	return false
}

// coversBlock reports whether one address block of the scope holds every
// address of block (its cidr minus its excepts). A block that does not parse
// is not covered (fail closed: the API server reads some forms, such as
// leading zeros, that netip refuses).
func (s *PeerScope) coversBlock(block *networkingv1.IPBlock) bool {
	cidr, err := netip.ParsePrefix(block.CIDR)
	if err != nil {
		return false
	}
	cidr = cidr.Masked()
	var except []netip.Prefix
	for _, e := range block.Except {
		if p, err := netip.ParsePrefix(e); err == nil {
			except = append(except, p.Masked())
		}
	}
	for _, allowed := range s.IPBlocks {
		if !prefixContains(allowed.CIDR, cidr) {
			continue
		}
		// Every address the scope excepts that the block could hold must
		// be excepted by the block too.
		covered := true
		for _, ae := range allowed.Except {
			if ae.Overlaps(cidr) && !slices.ContainsFunc(except, func(be netip.Prefix) bool { return prefixContains(be, ae) }) {
				covered = false
				break
			}
		}
		if covered {
			return true
		}
	}
	return false
}

// prefixContains reports whether outer holds every address of inner.
func prefixContains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

func describeBlock(b *networkingv1.IPBlock) string {
	if len(b.Except) == 0 {
		return b.CIDR
	}
	return b.CIDR + " except " + strings.Join(b.Except, ", ")
}

// pinnedNamespaces returns the namespaces a namespaceSelector can select
// when it is pinned by the immutable kubernetes.io/metadata.name label
// (matchLabels, or a matchExpressions In): the intersection of every such
// requirement. Other requirements only narrow it further. pinned is false
// when nothing pins it.
func pinnedNamespaces(sel *metav1.LabelSelector) (names []string, pinned bool) {
	if name, ok := sel.MatchLabels[v1alpha1.NamespaceNameLabel]; ok {
		names, pinned = []string{name}, true
	}
	for _, req := range sel.MatchExpressions {
		if req.Key != v1alpha1.NamespaceNameLabel || req.Operator != metav1.LabelSelectorOpIn {
			continue
		}
		if !pinned {
			names, pinned = slices.Clone(req.Values), true
			continue
		}
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(req.Values, n) })
	}
	slices.Sort(names)
	return slices.Compact(names), pinned
}

// RatchetTenantFindings splits the findings of ValidateTenantNetworkPolicy
// about np, which replaces the stored old (nil: np is new), into those to
// act on and those kept from the stored policy. A finding is kept only when
// it lies in a rule that old already holds unchanged (the same peers and
// ports, wherever the rule now stands) and np applies to the same pods as
// old or fewer (its pod selector keeps every term of old's), with the same
// policy types: an edit elsewhere in a policy stored before its namespace
// was isolated, or one that narrows it, is not refused, but no edit can widen
// what such a rule opens (another peer, more pods, other ports) without the
// check.
func RatchetTenantFindings(np, old *networkingv1.NetworkPolicy, errs field.ErrorList) (act, kept field.ErrorList) {
	if old == nil || len(errs) == 0 ||
		!narrowerSelector(&np.Spec.PodSelector, &old.Spec.PodSelector) ||
		!equality.Semantic.DeepEqual(old.Spec.PolicyTypes, np.Spec.PolicyTypes) {
		return errs, nil
	}
	var keptRules []string
	specPath := field.NewPath("spec")
	for i, rule := range np.Spec.Ingress {
		if slices.ContainsFunc(old.Spec.Ingress, func(o networkingv1.NetworkPolicyIngressRule) bool { return equality.Semantic.DeepEqual(o, rule) }) {
			keptRules = append(keptRules, specPath.Child("ingress").Index(i).String())
		}
	}
	for i, rule := range np.Spec.Egress {
		if slices.ContainsFunc(old.Spec.Egress, func(o networkingv1.NetworkPolicyEgressRule) bool { return equality.Semantic.DeepEqual(o, rule) }) {
			keptRules = append(keptRules, specPath.Child("egress").Index(i).String())
		}
	}
	for _, e := range errs {
		inKeptRule := slices.ContainsFunc(keptRules, func(rule string) bool {
			return e.Field == rule || strings.HasPrefix(e.Field, rule+".")
		})
		if inKeptRule {
			kept = append(kept, e)
		} else {
			act = append(act, e)
		}
	}
	return act, kept
}

// narrowerSelector reports whether selector a requires every term of b (its
// matchLabels and matchExpressions), so that it selects a subset of what b
// selects.
func narrowerSelector(a, b *metav1.LabelSelector) bool {
	for k, v := range b.MatchLabels {
		if got, ok := a.MatchLabels[k]; !ok || got != v {
			return false
		}
	}
	for _, req := range b.MatchExpressions {
		if !slices.ContainsFunc(a.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool { return equality.Semantic.DeepEqual(r, req) }) {
			return false
		}
	}
	return true
}
