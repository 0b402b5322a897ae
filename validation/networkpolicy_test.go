package validation

import (
	"net/netip"

	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// validNetworkPolicy is a user-written policy:
//
//	spec.ingress[0].from[0]  podSelector
//	spec.ingress[0].from[1]  ipBlock 192.168.0.0/16 except 192.168.1.0/24
//	spec.ingress[0].ports[0] TCP 80
//	spec.egress[0].to[0]     namespaceSelector
//	spec.egress[0].to[1]     ipBlock 10.1.0.1/32
//	spec.egress[0].ports[0]  UDP 5000-5100
//	spec.egress[0].ports[1]  named port dns (protocol unset)
func validNetworkPolicy() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "custom"},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80))}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{
					{NamespaceSelector: &metav1.LabelSelector{}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.1/32"}},
				},
				Ports: []networkingv1.NetworkPolicyPort{
					{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(5000)), EndPort: ptr.To[int32](5100)},
					{Port: ptr.To(intstr.FromString("dns"))},
				},
			}},
		},
	}
}

func TestValidateNetworkPolicy(t *testing.T) {
	ingressFrom1 := field.NewPath("spec", "ingress").Index(0).Child("from").Index(1).Child("ipBlock")
	egress := field.NewPath("spec", "egress").Index(0)

	cases := []struct {
		name         string
		tweak        func(*networkingv1.NetworkPolicy)
		cfg          Config
		wantErrs     field.ErrorList
		wantWarnings []string
	}{
		{name: "valid"},
		{name: "no ipBlocks and no ports", tweak: func(np *networkingv1.NetworkPolicy) {
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}}
		}},
		{name: "host bits in an egress ipBlock", tweak: func(np *networkingv1.NetworkPolicy) {
			np.Spec.Egress[0].To[1].IPBlock.CIDR = "10.1.0.1/24"
		}, wantErrs: field.ErrorList{
			field.Invalid(egress.Child("to").Index(1).Child("ipBlock", "cidr"), "10.1.0.1/24",
				"must not have host bits set: use the network address 10.1.0.0/24, or 10.1.0.1/32 for the single address 10.1.0.1"),
		}},
		{name: "except outside and mapped IPv6 cidr", tweak: func(np *networkingv1.NetworkPolicy) {
			np.Spec.Ingress[0].From[1].IPBlock.Except = []string{"172.16.0.0/24"}
			np.Spec.Egress[0].To[1].IPBlock.CIDR = "::ffff:10.0.0.0/104"
		}, wantErrs: field.ErrorList{
			field.Invalid(ingressFrom1.Child("except").Index(0), "172.16.0.0/24",
				"lies outside cidr 192.168.0.0/16: except can only remove addresses inside cidr; remove this entry or widen cidr"),
			field.Invalid(egress.Child("to").Index(1).Child("ipBlock", "cidr"), "::ffff:10.0.0.0/104",
				"must not be an IPv4-mapped IPv6 address: write the IPv4 CIDR 10.0.0.0/8"),
		}},
		{name: "SCTP without --sctp-enabled", tweak: func(np *networkingv1.NetworkPolicy) {
			np.Spec.Ingress[0].Ports[0].Protocol = ptr.To(corev1.ProtocolSCTP)
		}, wantErrs: field.ErrorList{
			field.Forbidden(field.NewPath("spec", "ingress").Index(0).Child("ports").Index(0).Child("protocol"), sctpDisabledDetail),
		}},
		{name: "SCTP with --sctp-enabled", cfg: Config{SCTPEnabled: true}, tweak: func(np *networkingv1.NetworkPolicy) {
			np.Spec.Ingress[0].Ports[0].Protocol = ptr.To(corev1.ProtocolSCTP)
		}},
		{name: "port defects", tweak: func(np *networkingv1.NetworkPolicy) {
			np.Spec.Egress[0].Ports[0].EndPort = ptr.To[int32](4000)
			np.Spec.Egress[0].Ports[1].EndPort = ptr.To[int32](4000)
			np.Spec.Egress[0].Ports = append(np.Spec.Egress[0].Ports, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.Protocol("ICMP")), Port: ptr.To(intstr.FromInt32(70000))})
		}, wantErrs: field.ErrorList{
			field.Invalid(egress.Child("ports").Index(0).Child("endPort"), int32(4000), "must not be below port 5000: the range is port..endPort"),
			field.Invalid(egress.Child("ports").Index(1).Child("endPort"), int32(4000),
				"must not be set with a named port: use a port number as the start of the range, or remove endPort"),
			field.NotSupported(egress.Child("ports").Index(2).Child("protocol"), corev1.Protocol("ICMP"), supportedProtocols),
			field.Invalid(egress.Child("ports").Index(2).Child("port"), int32(70000), "must be between 1 and 65535, inclusive"),
		}},
		{name: "warnings for the whole space and the pod network", cfg: Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}, tweak: func(np *networkingv1.NetworkPolicy) {
			np.Spec.Ingress[0].From[1].IPBlock = &networkingv1.IPBlock{CIDR: "::/0"}
			np.Spec.Egress[0].To[1].IPBlock.CIDR = "10.244.3.0/24"
		}, wantWarnings: []string{
			"spec.ingress[0].from[1].ipBlock.cidr: ::/0 matches every IPv6 address, which depending on the network plugin includes the pods of every project: list the external networks you mean instead",
			"spec.egress[0].to[1].ipBlock.cidr: 10.244.3.0/24 overlaps the cluster's pod network 10.244.0.0/16: pod IPs change as pods come and go; use a namespace or service peer to reach pods",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			np := validNetworkPolicy()
			if tc.tweak != nil {
				tc.tweak(np)
			}
			errs, warnings := ValidateNetworkPolicy(np, tc.cfg)
			checkFindings(t, errs, warnings, tc.wantErrs, tc.wantWarnings)
		})
	}

	t.Run("nil policy", func(t *testing.T) {
		errs, warnings := ValidateNetworkPolicy(nil, Config{})
		checkFindings(t, errs, warnings, nil, nil)
	})
}

func TestValidateNetworkPolicyName(t *testing.T) {
	np := func(name string, labels map[string]string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: name, Labels: labels}}
	}
	reserved := []Warning{{Field: "metadata.name", Detail: `names starting with "moat-" are reserved for the NetworkPolicies moat writes: only moat and cluster admins may create one, and while a policy without the label app.kubernetes.io/managed-by=moat holds such a name moat does not write its own (for moat-default-ingress, the namespace is not isolated); choose another name`}}
	for _, tc := range []struct {
		name string
		np   *networkingv1.NetworkPolicy
		want []Warning
	}{
		{"nil", nil, nil},
		{"a user's name", np("allow-web", nil), nil},
		{"moat's default ingress name", np("moat-default-ingress", nil), reserved},
		{"an allowlist policy's name", np("moat-allowlist-web", map[string]string{"team": "a"}), reserved},
		{"a policy moat manages", np("moat-default-ingress", map[string]string{"app.kubernetes.io/managed-by": "moat"}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ValidateNetworkPolicyName(tc.np)); diff != "" {
				t.Errorf("ValidateNetworkPolicyName() (-want +got):\n%s", diff)
			}
		})
	}
}
