package validation

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// TenantModel is what the tenant rule compares a NetworkPolicy of the
// isolated namespace ns against: policy.Compute on the stored namespace and
// its allowlists, with cfg.Policy. Cluster facts that change without the
// tenant's doing (node addresses, the API server's endpoints) are left out,
// so a tenant policy never depends on them. A Service that is missing, has
// no selector or cannot be looked up admits nothing, as in the policies moat
// generates; a lookup error yields a model without that Service's pods
// (fail closed).
func TenantModel(ns *corev1.Namespace, allowlists []*v1alpha1.NetworkAllowlist, cfg Config, cluster Cluster) policy.Model {
	var services policy.Services
	if cluster != nil {
		services = failClosedServices{cluster}
	}
	m, _ := policy.Compute(policy.Input{Namespace: ns, Allowlists: allowlists}, services, cfg.Policy)
	return m
}

// failClosedServices answers a failed Service lookup with "not found", so
// that the tenant model admits less, never more.
type failClosedServices struct{ cluster Cluster }

func (s failClosedServices) Service(namespace, name string) (*corev1.Service, error) {
	svc, err := s.cluster.Service(namespace, name)
	if err != nil {
		return nil, nil
	}
	return svc, nil
}

// ValidateTenantNetworkPolicy refuses a NetworkPolicy that would undo moat's
// isolation of its namespace ns: NetworkPolicies add up, so a policy that
// admits ingress from beyond what moat admits (an empty from, a
// namespaceSelector that is not pinned by kubernetes.io/metadata.name to an
// admitted namespace, an ipBlock that no admitted block covers, an admitted
// peer on a port moat does not admit it on) opens the project again; once
// moat restricts the namespace's egress, the same holds for egress. Each
// error is Forbidden at the offending peer (or at the empty from/to list,
// or at the port) and says to declare the peer in a NetworkAllowlist.
//
// It says nothing when ns is nil, not isolated or protected, when np is nil,
// or when the mode is off. The caller decides who is exempt (moat and the
// admin groups) and applies the mode (TenantPolicyMode.Findings).
func ValidateTenantNetworkPolicy(np *networkingv1.NetworkPolicy, ns *corev1.Namespace, allowlists []*v1alpha1.NetworkAllowlist, cfg Config, cluster Cluster) field.ErrorList {
	if np == nil || ns == nil || cfg.TenantNetworkPolicies.Effective() == TenantPoliciesOff {
		return nil
	}
	m := TenantModel(ns, allowlists, cfg, cluster)
	if !m.Enforced {
		return nil
	}
	return ValidateTenantNetworkPolicyAgainst(np, m)
}

// ValidateTenantNetworkPolicyAgainst is ValidateTenantNetworkPolicy with the
// model already computed: every connection that np admits must be admitted
// by the model. A model that admits more never yields more errors.
func ValidateTenantNetworkPolicyAgainst(np *networkingv1.NetworkPolicy, m policy.Model) field.ErrorList {
	return validateTenantPolicy(np, m, m)
}

// ValidateTenantNetworkPolicyAgainstIndex is ValidateTenantNetworkPolicyAgainst
// with the model indexed (policy.Model.Index), for checking many policies
// against one model: the same result, at a cost that does not grow with the
// model's admissions.
func ValidateTenantNetworkPolicyAgainstIndex(np *networkingv1.NetworkPolicy, x *policy.ModelIndex) field.ErrorList {
	return validateTenantPolicy(np, x.Model, x)
}

// selector answers which admissions of a model hold a peer:
// policy.Model scans them, *policy.ModelIndex looks them up.
type selector interface {
	Selections(egress bool, peer networkingv1.NetworkPolicyPeer) []policy.Selection
}

func validateTenantPolicy(np *networkingv1.NetworkPolicy, m policy.Model, sel selector) field.ErrorList {
	if np == nil || !m.Enforced {
		return nil
	}
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	for i, rule := range np.Spec.Ingress {
		rulePath := specPath.Child("ingress").Index(i)
		errs = append(errs, checkRule(m.Namespace, sel, false, rule.From, rule.Ports, rulePath, rulePath.Child("from"))...)
	}
	if m.EgressRestricted {
		for i, rule := range np.Spec.Egress {
			rulePath := specPath.Child("egress").Index(i)
			errs = append(errs, checkRule(m.Namespace, sel, true, rule.To, rule.Ports, rulePath, rulePath.Child("to"))...)
		}
	}
	return errs
}

// tenantFixSeparator begins the advice at the end of every finding of the
// tenant rule (FindingSummary cuts it off).
const tenantFixSeparator = "; NetworkPolicies add up, "

// checkRule returns an error for every peer of one rule that the model of
// namespace (whose Selections sel answers) does not admit, and for every port on which it does not admit an otherwise
// admitted peer (one error per port, at the port).
func checkRule(namespace string, sel selector, egress bool, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, rulePath, peersPath *field.Path) field.ErrorList {
	direction := "ingress from"
	if egress {
		direction = "egress to"
	}
	fix := fmt.Sprintf(tenantFixSeparator+"so this would undo moat's isolation of namespace %s: declare the peer in a NetworkAllowlist "+
		"(the audited path), or ask a member of moat's admin groups to create this policy", namespace)
	if len(peers) == 0 {
		return field.ErrorList{field.Forbidden(peersPath, fmt.Sprintf("an empty list admits %s everywhere (every pod of every namespace and every address)", direction)+fix)}
	}
	var errs field.ErrorList
	portRefused := make([]bool, len(ports))
	allPortsRefused := false
	for j, peer := range peers {
		for _, sel := range sel.Selections(egress, peer) {
			if len(sel.By) == 0 {
				errs = append(errs, field.Forbidden(peersPath.Index(j).Child(sel.Field), fmt.Sprintf("admits %s %s%s", direction, sel.What, sel.Why)+fix))
				break
			}
			if len(ports) == 0 {
				if !allPortsRefused && !policy.CoversPort(sel.By, nil) {
					allPortsRefused = true
					errs = append(errs, field.Forbidden(rulePath.Child("ports"), fmt.Sprintf("an empty list admits %s %s on every port, but moat admits it only on %s (%s): list those ports",
						direction, sel.What, admittedPorts(sel.By), sel.By[0].Source)+fix))
				}
				continue
			}
			for k := range ports {
				if !portRefused[k] && !policy.CoversPort(sel.By, &ports[k]) {
					portRefused[k] = true
					errs = append(errs, field.Forbidden(rulePath.Child("ports").Index(k), fmt.Sprintf("admits %s %s on %s, but moat admits it only on %s (%s)",
						direction, sel.What, policy.DescribePort(&ports[k]), admittedPorts(sel.By), sel.By[0].Source)+fix))
				}
			}
		}
	}
	return errs
}

// admittedPorts names the ports on which admissions admit a peer.
func admittedPorts(by []policy.Admission) string {
	if len(by) == 1 {
		return policy.DescribePorts(by[0].Ports)
	}
	out := ""
	for i, a := range by {
		if i > 0 {
			out += "; "
		}
		out += policy.DescribePorts(a.Ports)
	}
	return out
}
