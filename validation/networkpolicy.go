package validation

import (
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateNetworkPolicy checks a user-written networking.k8s.io/v1 NetworkPolicy: CIDRs, ports, SCTP.
//
// It applies the checks moat makes on allowlists (ValidateIPBlock on every
// ipBlock, the port and SCTP rules on every port) on top of the API server's
// own validation, and says nothing about the rest of the policy. A nil policy
// has nothing to check.
func ValidateNetworkPolicy(np *networkingv1.NetworkPolicy, cfg Config) (field.ErrorList, []string) {
	if np == nil {
		return nil, nil
	}
	var errs field.ErrorList
	var warnings []string
	peers := func(peers []networkingv1.NetworkPolicyPeer, fldPath *field.Path) {
		for j := range peers {
			block := peers[j].IPBlock
			if block == nil {
				continue
			}
			e, w := ValidateIPBlock(block.CIDR, block.Except, fldPath.Index(j).Child("ipBlock"), cfg)
			errs = append(errs, e...)
			warnings = append(warnings, w...)
		}
	}
	ports := func(ports []networkingv1.NetworkPolicyPort, fldPath *field.Path) {
		for k := range ports {
			p := &ports[k]
			errs = append(errs, validatePort(p.Protocol, p.Port, p.EndPort, fldPath.Index(k), cfg)...)
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
