package validation

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// ValidateNetworkPolicy checks a user-written networking.k8s.io/v1 NetworkPolicy: CIDRs, ports, SCTP.
//
// It applies the checks moat makes on allowlists (ValidateIPBlock on every
// ipBlock, the port and SCTP rules on every port) on top of the API server's
// own validation, and says nothing about the rest of the policy. A nil policy
// has nothing to check.
func ValidateNetworkPolicy(np *networkingv1.NetworkPolicy, cfg Config) (field.ErrorList, []Warning) {
	return ValidateNetworkPolicyUpdate(np, nil, cfg)
}

// ValidateNetworkPolicyUpdate checks np, which replaces the stored old (nil:
// np is new), with the rules of ValidateNetworkPolicy, ratcheted: an error
// about a port or ipBlock that old already holds becomes a warning, so that a
// policy stored before moat (or a rule of moat) can still be edited.
func ValidateNetworkPolicyUpdate(np, old *networkingv1.NetworkPolicy, cfg Config) (field.ErrorList, []Warning) {
	if np == nil {
		return nil, nil
	}
	s := storedPolicy(old)
	var errs field.ErrorList
	var warnings []Warning
	reject := func(e field.ErrorList, kept bool) {
		e, w := ratchet(e, kept)
		errs = append(errs, e...)
		warnings = append(warnings, w...)
	}
	peers := func(peers []networkingv1.NetworkPolicyPeer, fldPath *field.Path) {
		for j := range peers {
			block := peers[j].IPBlock
			if block == nil {
				continue
			}
			e, w := ValidateIPBlock(block.CIDR, block.Except, fldPath.Index(j).Child("ipBlock"), cfg)
			reject(e, s.hasIPBlock(ipBlockValue(block.CIDR, block.Except)))
			warnings = append(warnings, w...)
		}
	}
	ports := func(ports []networkingv1.NetworkPolicyPort, fldPath *field.Path) {
		for k := range ports {
			p := &ports[k]
			if e := ValidatePort(p.Protocol, p.Port, p.EndPort, fldPath.Index(k), cfg); len(e) > 0 {
				reject(e, s.hasPort(portValueOf(p.Protocol, p.Port, p.EndPort)))
			}
		}
	}

	specPath := field.NewPath("spec")
	for i := range np.Spec.Ingress {
		rule := &np.Spec.Ingress[i]
		rulePath := specPath.Child("ingress").Index(i)
		peers(rule.From, rulePath.Child("from"))
		ports(rule.Ports, rulePath.Child("ports"))
	}
	for i := range np.Spec.Egress {
		rule := &np.Spec.Egress[i]
		rulePath := specPath.Child("egress").Index(i)
		peers(rule.To, rulePath.Child("to"))
		ports(rule.Ports, rulePath.Child("ports"))
	}
	return errs, warnings
}

// storedPolicy collects the ports and ipBlocks of a stored policy for
// ratcheting; nil for none.
func storedPolicy(old *networkingv1.NetworkPolicy) *stored {
	if old == nil {
		return nil
	}
	s := newStored()
	add := func(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) {
		for _, p := range peers {
			if p.IPBlock != nil {
				s.ipBlocks[ipBlockValue(p.IPBlock.CIDR, p.IPBlock.Except)] = true
			}
		}
		for _, p := range ports {
			s.ports[portValueOf(p.Protocol, p.Port, p.EndPort)] = true
		}
	}
	for _, rule := range old.Spec.Ingress {
		add(rule.From, rule.Ports)
	}
	for _, rule := range old.Spec.Egress {
		add(rule.To, rule.Ports)
	}
	return s
}

// ValidateNetworkPolicyName warns about a NetworkPolicy that moat does not
// manage under a name reserved for the policies moat writes
// (policy.IsReservedPolicyName): moat's webhook refuses to create it for
// everyone but moat and the admins, and while it exists moat does not write
// its own policy of that name (issue 20, case 9). It is a warning, not an
// error, because only the identity that applies it decides; `moat validate`
// reports it. A nil policy has nothing to check.
func ValidateNetworkPolicyName(np *networkingv1.NetworkPolicy) []Warning {
	if np == nil || !policy.IsReservedPolicyName(np.Name) || policy.IsManaged(np) {
		return nil
	}
	return []Warning{newWarning(field.NewPath("metadata", "name"), fmt.Sprintf(
		"names starting with %q are reserved for the NetworkPolicies moat writes: only moat and cluster admins may create one, and while a policy without the label %s=%s holds such a name moat does not write its own (for %s, the namespace is not isolated); choose another name",
		policy.ReservedPolicyNamePrefix, v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue, policy.DefaultIngressPolicyName))}
}
