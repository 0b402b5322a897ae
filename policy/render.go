package policy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"moat.dev/moat/api/v1alpha1"
)

// Input is one project: its Namespace and every NetworkAllowlist in it, and
// the cluster-wide facts its policies may depend on.
type Input struct {
	Namespace  *corev1.Namespace
	Allowlists []*v1alpha1.NetworkAllowlist

	// NodeAddresses are the addresses of every node (see NodeAddresses);
	// used only with Config.AllowIngressFromNodes. Order and duplicates do
	// not matter.
	NodeAddresses []netip.Addr
	// APIServer are the endpoints of the Kubernetes API server (see
	// APIServerEndpoints), for kubernetesAPI peers; empty when unknown.
	APIServer []Endpoints
}

// Result is everything moat must own in the namespace.
type Result struct {
	// Policies are the desired NetworkPolicies, sorted by name; empty when
	// isolation is off.
	Policies []networkingv1.NetworkPolicy `json:"policies,omitempty"`
	// Allowlists holds, by allowlist name, one entry per input allowlist.
	Allowlists map[string]AllowlistResult `json:"allowlists,omitempty"`
}

// AllowlistResult is what status must say about one allowlist.
type AllowlistResult struct {
	// Policies names the NetworkPolicies generated from the allowlist, sorted.
	Policies []string `json:"policies,omitempty"`
	// Problems say why parts of the allowlist are not in force; empty when
	// the allowlist is fully applied.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one reason why part of an allowlist is not in force.
type Problem struct {
	// Reason is one of the v1alpha1.Reason* constants.
	Reason string `json:"reason"`
	// Field is the path of the offending part, e.g.
	// spec.egress[0].to[1].service; empty when the whole allowlist is
	// concerned.
	Field string `json:"field,omitempty"`
	// Message explains the problem to a human.
	Message string `json:"message"`
}

// Render computes the NetworkPolicies moat must own in the namespace of in
// and what each allowlist's status must report. It is deterministic: the same
// namespace, allowlists (in any order), Services and configuration give
// identical results.
//
// An allowlist without rules yields no policy. An allowlist whose rules are
// all dropped (their Service peers cannot be translated) keeps its policy,
// with policyTypes but no rules: it allows nothing, and its name in the
// status does not flicker while a Service comes and goes.
//
// A nil Namespace counts as not isolated. A nil services is a cluster without
// Services: every Service peer is then reported as not found. Render returns
// an error only when a Services lookup fails; it never returns a partial
// Result in that case.
func Render(in Input, services Services, cfg Config) (Result, error) {
	allowlists := uniqueAllowlists(in.Allowlists)

	result := Result{Allowlists: make(map[string]AllowlistResult, len(allowlists))}
	if !v1alpha1.Isolated(in.Namespace) {
		for _, al := range allowlists {
			result.Allowlists[al.Name] = AllowlistResult{Problems: []Problem{isolationDisabled(in.Namespace)}}
		}
		return result, nil
	}
	if Protected(in.Namespace, cfg) {
		for _, al := range allowlists {
			result.Allowlists[al.Name] = AllowlistResult{Problems: []Problem{ProtectedProblem(in.Namespace.Name)}}
		}
		return result, nil
	}

	r := &renderer{namespace: in.Namespace.Name, services: services, cache: map[serviceKey]*corev1.Service{},
		projectLabel: cfg.ProjectLabel, apiServer: in.APIServer}
	policies := []networkingv1.NetworkPolicy{defaultIngressPolicy(in, cfg)}
	if declaresEgress(allowlists) {
		egress, err := r.defaultEgressPolicy(cfg)
		if err != nil {
			return Result{}, err
		}
		policies = append(policies, egress)
	}
	// Distinct allowlist names can map to one policy name once PolicyName
	// truncates and hashes a long name. The first allowlist by name keeps
	// the policy; the others get none and report the conflict, so that no
	// two desired policies share a name (they would overwrite each other
	// on every reconcile, for ever).
	owner := make(map[string]string, len(policies)+len(allowlists))
	for _, np := range policies {
		owner[np.Name] = ""
	}
	for _, al := range allowlists {
		np, status, err := r.allowlistPolicy(al)
		if err != nil {
			return Result{}, err
		}
		if np != nil {
			if other, taken := owner[np.Name]; taken {
				status = AllowlistResult{Problems: append(status.Problems, nameTaken(np.Name, other))}
				np = nil
			} else {
				owner[np.Name] = al.Name
				policies = append(policies, *np)
			}
		}
		result.Allowlists[al.Name] = status
	}
	slices.SortStableFunc(policies, func(a, b networkingv1.NetworkPolicy) int {
		return cmp.Compare(a.Name, b.Name)
	})
	result.Policies = policies
	return result, nil
}

// renderer holds what one Render call shares: the namespace and the Service
// lookups, each Service looked up at most once.
type renderer struct {
	namespace string
	services  Services
	cache     map[serviceKey]*corev1.Service
	// projectLabel is Config.ProjectLabel; apiServer is Input.APIServer.
	projectLabel string
	apiServer    []Endpoints
}

type serviceKey struct{ namespace, name string }

// service returns the named Service, or nil when it does not exist.
func (r *renderer) service(namespace, name string) (*corev1.Service, error) {
	key := serviceKey{namespace, name}
	if svc, ok := r.cache[key]; ok {
		return svc, nil
	}
	var svc *corev1.Service
	if r.services != nil {
		var err error
		if svc, err = r.services.Service(namespace, name); err != nil {
			return nil, fmt.Errorf("looking up Service %s/%s: %w", namespace, name, err)
		}
	}
	r.cache[key] = svc
	return svc, nil
}

// uniqueAllowlists returns the allowlists sorted by name, without nil
// entries and with one allowlist per name. Names are unique in a namespace;
// should the input repeat one (the same manifest given twice offline), the
// first in a stable order (UID, then spec) is used, so the input order never
// matters.
func uniqueAllowlists(in []*v1alpha1.NetworkAllowlist) []*v1alpha1.NetworkAllowlist {
	allowlists := make([]*v1alpha1.NetworkAllowlist, 0, len(in))
	for _, al := range in {
		if al != nil {
			allowlists = append(allowlists, al)
		}
	}
	slices.SortFunc(allowlists, func(a, b *v1alpha1.NetworkAllowlist) int {
		if c := cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.UID, b.UID)); c != 0 {
			return c
		}
		// Only reached for a repeated name and UID.
		specA, _ := json.Marshal(a.Spec)
		specB, _ := json.Marshal(b.Spec)
		return bytes.Compare(specA, specB)
	})
	return slices.CompactFunc(allowlists, func(a, b *v1alpha1.NetworkAllowlist) bool {
		return a.Name == b.Name
	})
}

func isolationDisabled(ns *corev1.Namespace) Problem {
	name := "the namespace"
	if ns != nil {
		name = fmt.Sprintf("namespace %q", ns.Name)
	}
	return Problem{
		Reason: v1alpha1.ReasonIsolationDisabled,
		Message: fmt.Sprintf("%s is not isolated, so no NetworkPolicy is generated; label it %s=true to enforce this allowlist",
			name, v1alpha1.IsolationLabel),
	}
}

// nameTaken reports an allowlist whose policy name is already generated for
// another allowlist (other) of the namespace, or for a default policy when
// other is empty.
func nameTaken(policyName, other string) Problem {
	by := "a default policy of the namespace"
	if other != "" {
		by = fmt.Sprintf("allowlist %q", other)
	}
	return Problem{
		Reason: v1alpha1.ReasonPolicyConflict,
		Field:  "metadata.name",
		Message: fmt.Sprintf("the NetworkPolicy name %q generated for this allowlist is already generated for %s (long names are shortened with a hash); nothing is generated for this allowlist: give it a shorter name",
			policyName, by),
	}
}

// declaresEgress reports whether any allowlist declares an egress rule.
// Declared rules count, not resolved peers: an egress rule whose Service
// peers are all dropped still closes egress (fail closed).
func declaresEgress(allowlists []*v1alpha1.NetworkAllowlist) bool {
	return v1alpha1.RestrictsEgress(allowlists)
}

// newPolicy returns a NetworkPolicy with moat's TypeMeta, name, namespace and
// managed-by label, selecting every pod of the namespace.
func newPolicy(namespace, name string, types ...networkingv1.PolicyType) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{
			APIVersion: networkingv1.SchemeGroupVersion.String(),
			Kind:       "NetworkPolicy",
		},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: namespace,
			Labels:    ManagedLabels(),
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: types,
		},
	}
}

// namespacePeer selects every pod of the named namespace by its immutable
// kubernetes.io/metadata.name label.
func namespacePeer(name string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: namespaceSelector(name)}
}

func namespaceSelector(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: name}}
}

// projectPeer selects every pod of every namespace whose project label key
// has the value project: the group, including namespaces that join it later.
// The key is a guarded label (only admins and trusted controllers may set
// it), so a tenant cannot join a group by relabelling a namespace.
func projectPeer(key, project string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{key: project}}}
}

// hostPeer is an ipBlock of exactly one address: /32 or /128.
func hostPeer(addr netip.Addr) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(addr, addr.BitLen()).String()}}
}

// sameNamespacePeer selects every pod of the policy's own namespace.
func sameNamespacePeer() networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}
}
