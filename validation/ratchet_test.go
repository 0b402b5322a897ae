package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

const hostBitsDetail = "must not have host bits set: use the network address 10.1.0.0/24, or 10.1.0.1/32 for the single address 10.1.0.1"

// ratcheted is the warning that replaces err on a kept value.
func ratcheted(err *field.Error) string {
	return err.Field + ": " + ratchetedDetail(err)
}

func sctpPort(port int32) v1alpha1.Port {
	return v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(port))}
}

// TestValidateNetworkAllowlistUpdateRatchets: an update fails only on values
// it adds; values the stored allowlist already holds are reported as
// warnings, wherever they now stand.
func TestValidateNetworkAllowlistUpdateRatchets(t *testing.T) {
	// Stored while SCTP was on: egress[0] has an SCTP port; stored before
	// the host-bits rule: ingress[0].from[1] is 10.1.0.1/24.
	stored := func() *v1alpha1.NetworkAllowlist {
		nal := validAllowlist()
		nal.Spec.Egress[0].Ports = append(nal.Spec.Egress[0].Ports, sctpPort(3868))
		nal.Spec.Ingress[0].From[1].IPBlock.CIDR = "10.1.0.1/24"
		return nal
	}
	sctpErr := func(path *field.Path) *field.Error {
		return field.Forbidden(path.Child("protocol"), sctpDisabledDetail)
	}
	hostBitsErr := field.Invalid(ingress0.Child("from").Index(1).Child("ipBlock", "cidr"), "10.1.0.1/24", hostBitsDetail)
	sctpAt := egress0.Child("ports").Index(1)

	cases := []struct {
		name         string
		old          *v1alpha1.NetworkAllowlist // nil: a create
		tweak        func(*v1alpha1.NetworkAllowlist)
		wantErrs     field.ErrorList
		wantWarnings []string
	}{{
		name:     "create: both rules reject",
		wantErrs: field.ErrorList{hostBitsErr, sctpErr(sctpAt)},
	}, {
		name: "update that changes another rule: kept values warn",
		old:  stored(),
		tweak: func(nal *v1alpha1.NetworkAllowlist) {
			nal.Spec.Egress[1].Ports = nal.Spec.Egress[1].Ports[:1]
		},
		wantWarnings: []string{ratcheted(hostBitsErr), ratcheted(sctpErr(sctpAt))},
	}, {
		name: "update that removes the offending port",
		old:  stored(),
		tweak: func(nal *v1alpha1.NetworkAllowlist) {
			nal.Spec.Egress[0].Ports = nal.Spec.Egress[0].Ports[:1]
		},
		wantWarnings: []string{ratcheted(hostBitsErr)},
	}, {
		name: "kept values that moved (a rule before them was removed) still warn",
		old:  stored(),
		tweak: func(nal *v1alpha1.NetworkAllowlist) {
			nal.Spec.Egress = append([]v1alpha1.EgressRule{{To: []v1alpha1.Peer{{Namespace: "demo-project-2"}}}}, nal.Spec.Egress...)
		},
		wantWarnings: []string{ratcheted(hostBitsErr), ratcheted(sctpErr(egress1.Child("ports").Index(1)))},
	}, {
		name: "a new SCTP port is rejected even though the stored allowlist has one",
		old:  stored(),
		tweak: func(nal *v1alpha1.NetworkAllowlist) {
			nal.Spec.Egress[1].Ports = append(nal.Spec.Egress[1].Ports, sctpPort(9899))
		},
		wantErrs:     field.ErrorList{sctpErr(egress1.Child("ports").Index(2))},
		wantWarnings: []string{ratcheted(hostBitsErr), ratcheted(sctpErr(sctpAt))},
	}, {
		// The stored ipBlock ratchets as a whole value: keeping its cidr
		// does not let a new except entry in unchecked.
		name: "a new invalid except next to a stored cidr is rejected",
		old:  stored(),
		tweak: func(nal *v1alpha1.NetworkAllowlist) {
			nal.Spec.Egress[0].To[1].IPBlock.Except = []string{"10.9.0.0/28"}
		},
		wantErrs: field.ErrorList{field.Invalid(egress0.Child("to").Index(1).Child("ipBlock", "except").Index(0), "10.9.0.0/28",
			"lies outside cidr 10.1.0.1/32: except can only remove addresses inside cidr; remove this entry or widen cidr")},
		wantWarnings: []string{ratcheted(hostBitsErr), ratcheted(sctpErr(sctpAt))},
	}, {
		name: "a changed CIDR is checked again",
		old:  stored(),
		tweak: func(nal *v1alpha1.NetworkAllowlist) {
			nal.Spec.Ingress[0].From[1].IPBlock.CIDR = "10.1.0.1/16"
		},
		wantErrs: field.ErrorList{field.Invalid(ingress0.Child("from").Index(1).Child("ipBlock", "cidr"), "10.1.0.1/16",
			"must not have host bits set: use the network address 10.1.0.0/16, or 10.1.0.1/32 for the single address 10.1.0.1")},
		wantWarnings: []string{ratcheted(sctpErr(sctpAt))},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nal := stored()
			if tc.tweak != nil {
				tc.tweak(nal)
			}
			errs, warnings := ValidateNetworkAllowlistUpdate(nal, tc.old, Config{}, validCluster())
			checkFindings(t, errs, warnings, tc.wantErrs, tc.wantWarnings)
		})
	}
}

// TestValidateNetworkAllowlistUpdateRatchetsLookups: a Service that lost its
// selector after the allowlist was stored does not block edits of the
// allowlist; a new reference to it is rejected.
func TestValidateNetworkAllowlistUpdateRatchetsLookups(t *testing.T) {
	cluster := validCluster()
	cluster.services["demo-project-2/nginx"].Spec.Selector = nil
	svcPath := egress0.Child("to").Index(0).Child("service")
	noSelector := func(path *field.Path) *field.Error {
		return field.Invalid(path, "demo-project-2/nginx",
			"Service demo-project-2/nginx has no selector: NetworkPolicy cannot select its endpoints; use an ipBlock peer with the endpoint addresses (kubectl get endpointslices -n demo-project-2 -l kubernetes.io/service-name=nginx)")
	}

	old := validAllowlist()
	nal := validAllowlist()
	nal.Spec.Ingress[0].Ports = nil
	errs, warnings := ValidateNetworkAllowlistUpdate(nal, old, Config{}, cluster)
	checkFindings(t, errs, warnings, nil, []string{ratcheted(noSelector(svcPath))})

	old.Spec.Egress[0].To = old.Spec.Egress[0].To[1:]
	errs, warnings = ValidateNetworkAllowlistUpdate(nal, old, Config{}, cluster)
	checkFindings(t, errs, warnings, field.ErrorList{noSelector(svcPath)}, nil)
}

// TestValidateNetworkPolicyUpdateRatchets covers user NetworkPolicies: an
// unchanged policy never fails, an edit fails only on what it adds.
func TestValidateNetworkPolicyUpdateRatchets(t *testing.T) {
	stored := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "legacy"},
		Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.1/24"}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(3868))}},
			}},
		},
	}
	rule := field.NewPath("spec", "ingress").Index(0)
	hostBits := field.Invalid(rule.Child("from").Index(0).Child("ipBlock", "cidr"), "10.1.0.1/24", hostBitsDetail)
	sctp := func(i int) *field.Error {
		return field.Forbidden(rule.Child("ports").Index(i).Child("protocol"), sctpDisabledDetail)
	}

	errs, warnings := ValidateNetworkPolicyUpdate(stored, stored.DeepCopy(), Config{})
	checkFindings(t, errs, warnings, nil, []string{ratcheted(hostBits), ratcheted(sctp(0))})

	errs, warnings = ValidateNetworkPolicy(stored, Config{})
	checkFindings(t, errs, warnings, field.ErrorList{hostBits, sctp(0)}, nil)

	edited := stored.DeepCopy()
	edited.Spec.Ingress[0].Ports = append(edited.Spec.Ingress[0].Ports,
		networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(9899))})
	errs, warnings = ValidateNetworkPolicyUpdate(edited, stored, Config{})
	checkFindings(t, errs, warnings, field.ErrorList{sctp(1)}, []string{ratcheted(hostBits), ratcheted(sctp(0))})
}

// TestValidateNetworkPolicyUpdateRatchetsEgress: an egress ipBlock the
// stored policy holds is kept too.
func TestValidateNetworkPolicyUpdateRatchetsEgress(t *testing.T) {
	stored := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "legacy"},
		Spec: networkingv1.NetworkPolicySpec{
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.1/24"}}}}},
		},
	}
	hostBits := field.Invalid(field.NewPath("spec", "egress").Index(0).Child("to").Index(0).Child("ipBlock", "cidr"), "10.1.0.1/24", hostBitsDetail)
	errs, warnings := ValidateNetworkPolicyUpdate(stored, stored.DeepCopy(), Config{})
	checkFindings(t, errs, warnings, nil, []string{ratcheted(hostBits)})
}

// TestValidateNetworkAllowlistUpdateNewNamespacePeer: an update ratchets
// only the namespace names the stored allowlist holds; a new invalid one
// is refused.
func TestValidateNetworkAllowlistUpdateNewNamespacePeer(t *testing.T) {
	old := validAllowlist()
	nal := validAllowlist()
	nal.Spec.Ingress[0].From = append(nal.Spec.Ingress[0].From, v1alpha1.Peer{Namespace: "Demo_Project"})
	errs, _ := ValidateNetworkAllowlistUpdate(nal, old, Config{}, nil)
	if len(errs) != 1 || errs[0].Field != "spec.ingress[0].from[2].namespace" {
		t.Errorf("errors %v, want one at spec.ingress[0].from[2].namespace", errs)
	}
}
