package validation

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Ratcheting has this one home. Like Kubernetes' validation ratcheting, an
// update never fails on a value it keeps from the stored object: an object
// stored before a rule applied (or while SCTP was on) can still be edited
// and can shed its offending values, but no new such value is accepted.
//   - allowlists and NetworkPolicies: values kept by value wherever they
//     stand (stored, ratchet);
//   - the tenant rule: findings in rules the stored policy holds unchanged
//     (RatchetTenantFindings).

// stored holds, by value, what the stored object of an update already
// contains: the values a rule may ratchet (see ratchet). Values are matched
// wherever they stand in the object, so removing a rule (which shifts the
// indices of the rules after it) keeps the values of those rules.
type stored struct {
	ports    map[portValue]bool
	ipBlocks map[string]bool
	// services holds "namespace/name" of Service peers, namespaces the
	// names of namespace peers.
	services   map[string]bool
	namespaces map[string]bool
}

func newStored() *stored {
	return &stored{ports: map[portValue]bool{}, ipBlocks: map[string]bool{}, services: map[string]bool{}, namespaces: map[string]bool{}}
}

// portValue identifies a port entry (of an allowlist or a NetworkPolicy) by value.
type portValue struct {
	protocol       corev1.Protocol
	hasPort        bool
	port           intstr.IntOrString
	hasEnd         bool
	endPort        int32
	protocolIsNull bool
}

func portValueOf(protocol *corev1.Protocol, port *intstr.IntOrString, endPort *int32) portValue {
	v := portValue{protocolIsNull: protocol == nil}
	if protocol != nil {
		v.protocol = *protocol
	}
	if port != nil {
		v.hasPort, v.port = true, *port
	}
	if endPort != nil {
		v.hasEnd, v.endPort = true, *endPort
	}
	return v
}

func ipBlockValue(cidr string, except []string) string {
	return cidr + "\x00" + strings.Join(except, "\x00")
}

// The has* methods of a nil *stored (a create) report false.

func (s *stored) hasPort(v portValue) bool      { return s != nil && s.ports[v] }
func (s *stored) hasIPBlock(v string) bool      { return s != nil && s.ipBlocks[v] }
func (s *stored) hasService(key string) bool    { return s != nil && s.services[key] }
func (s *stored) hasNamespace(name string) bool { return s != nil && s.namespaces[name] }

// ratchetedDetail is the detail of the warning that replaces an error on a
// value an update keeps from the stored object (see ratchet).
func ratchetedDetail(err *field.Error) string {
	return "kept because it was stored before this check applied (" + err.ErrorBody() +
		"); it may stay, but no new such value is accepted: fix it when you can"
}

// ratchet returns errs unchanged when kept is false. When kept is true (an
// update keeps the value the errors are about from the stored object), it
// returns no errors and one warning per error instead: like Kubernetes'
// validation ratcheting, an update never fails on a value it did not change,
// so an object stored before a rule applied (or while SCTP was on) can still
// be edited, and can shed its offending values.
func ratchet(errs field.ErrorList, kept bool) (field.ErrorList, []Warning) {
	if !kept || len(errs) == 0 {
		return errs, nil
	}
	warnings := make([]Warning, len(errs))
	for i, err := range errs {
		warnings[i] = Warning{Field: err.Field, Detail: ratchetedDetail(err)}
	}
	return nil, warnings
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
