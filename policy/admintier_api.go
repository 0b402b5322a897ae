package policy

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// AdminTierObject is an admin-tier object: an AdminNetworkPolicy or a
// ClusterNetworkPolicy (a controller-runtime client.Object).
type AdminTierObject interface {
	metav1.Object
	runtime.Object
}

// AdminTier renders the model as the admin-tier objects of e at priority
// (see adminObjects): AdminNetworkPolicies or ClusterNetworkPolicies of the
// Admin tier, the main object (with the Deny rules) first. It renders
// nothing for EnforcementNetworkPolicy or a model that enforces nothing.
func (m Model) AdminTier(e Enforcement, priority int32) ([]AdminTierObject, error) {
	var out []AdminTierObject
	switch e {
	case EnforcementAdminNetworkPolicy:
		anps, err := m.AdminNetworkPolicies(priority)
		for i := range anps {
			out = append(out, &anps[i])
		}
		return out, err
	case EnforcementClusterNetworkPolicy:
		cnps, err := m.ClusterNetworkPolicies(priority)
		for i := range cnps {
			out = append(out, &cnps[i])
		}
		return out, err
	}
	return nil, nil
}

// AdminNetworkPolicies renders the model as AdminNetworkPolicies
// (v1alpha1), within that API's limits: 100 rules per direction, 100 peers
// and ports per rule, 25 networks per peer.
func (m Model) AdminNetworkPolicies(priority int32) ([]npav1alpha1.AdminNetworkPolicy, error) {
	objects, err := m.adminObjects(priority, anpLimits)
	if err != nil {
		return nil, err
	}
	out := make([]npav1alpha1.AdminNetworkPolicy, 0, len(objects))
	for _, o := range objects {
		anp := npav1alpha1.AdminNetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: npav1alpha1.GroupVersion.String(), Kind: "AdminNetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Labels: AdminTierLabels(m.Namespace)},
			Spec: npav1alpha1.AdminNetworkPolicySpec{
				Priority: o.priority,
				Subject:  npav1alpha1.AdminNetworkPolicySubject{Namespaces: namespaceSelector(m.Namespace)},
			},
		}
		for _, r := range o.ingress {
			anp.Spec.Ingress = append(anp.Spec.Ingress, npav1alpha1.AdminNetworkPolicyIngressRule{
				Name: r.name, Action: anpAction(r.deny), From: anpIngressPeers(r.peers), Ports: anpPorts(r.ports)})
		}
		for _, r := range o.egress {
			anp.Spec.Egress = append(anp.Spec.Egress, npav1alpha1.AdminNetworkPolicyEgressRule{
				Name: r.name, Action: anpAction(r.deny), To: anpEgressPeers(r.peers), Ports: anpPorts(r.ports)})
		}
		out = append(out, anp)
	}
	return out, nil
}

func anpAction(deny bool) npav1alpha1.AdminNetworkPolicyRuleAction {
	if deny {
		return npav1alpha1.AdminNetworkPolicyRuleActionDeny
	}
	return npav1alpha1.AdminNetworkPolicyRuleActionPass
}

func anpIngressPeers(peers []adminPeer) []npav1alpha1.AdminNetworkPolicyIngressPeer {
	out := make([]npav1alpha1.AdminNetworkPolicyIngressPeer, 0, len(peers))
	for _, p := range peers {
		e := anpEgressPeer(p)
		out = append(out, npav1alpha1.AdminNetworkPolicyIngressPeer{Namespaces: e.Namespaces, Pods: e.Pods})
	}
	return out
}

func anpEgressPeers(peers []adminPeer) []npav1alpha1.AdminNetworkPolicyEgressPeer {
	out := make([]npav1alpha1.AdminNetworkPolicyEgressPeer, 0, len(peers))
	for _, p := range peers {
		out = append(out, anpEgressPeer(p))
	}
	return out
}

func anpEgressPeer(p adminPeer) npav1alpha1.AdminNetworkPolicyEgressPeer {
	var out npav1alpha1.AdminNetworkPolicyEgressPeer
	switch {
	case p.namespaces != nil:
		out.Namespaces = p.namespaces.DeepCopy()
	case p.pods != nil:
		out.Pods = &npav1alpha1.NamespacedPod{NamespaceSelector: *p.pods.namespaces.DeepCopy(), PodSelector: *p.pods.pods.DeepCopy()}
	default:
		for _, n := range p.networks {
			out.Networks = append(out.Networks, npav1alpha1.CIDR(n))
		}
	}
	return out
}

// anpPorts translates NetworkPolicy ports: no port is the whole range of
// the protocol, endPort makes a range, and a named port is the whole range
// of its protocol (see passPortParts).
func anpPorts(ports []networkingv1.NetworkPolicyPort) *[]npav1alpha1.AdminNetworkPolicyPort {
	if len(ports) == 0 {
		return nil
	}
	out := make([]npav1alpha1.AdminNetworkPolicyPort, 0, len(ports))
	for _, p := range ports {
		proto, start, end := passPortParts(p)
		switch {
		case start == end:
			out = append(out, npav1alpha1.AdminNetworkPolicyPort{PortNumber: &npav1alpha1.Port{Protocol: proto, Port: start}})
		default:
			out = append(out, npav1alpha1.AdminNetworkPolicyPort{PortRange: &npav1alpha1.PortRange{Protocol: proto, Start: start, End: end}})
		}
	}
	return &out
}

// passPortParts reads a NetworkPolicy port as the protocol and range that a
// Pass rule names: a named port becomes the whole range of its protocol. The
// fields that match a port by name (AdminNetworkPolicy namedPort,
// ClusterNetworkPolicy destinationNamedPort) are only in the experimental
// channel's CRDs: on a cluster with the standard CRDs an object naming one
// is refused, and with it the Deny of that object. Passing the protocol
// whole hands the port to NetworkPolicy, where moat's own policy still
// admits only the named port (and the tenant check guards the rest).
func passPortParts(p networkingv1.NetworkPolicyPort) (corev1.Protocol, int32, int32) {
	proto, start, end, named := portParts(p)
	if named != "" {
		return proto, 1, 65535
	}
	return proto, start, end
}

// portParts reads a NetworkPolicy port as a protocol (TCP when unset) and
// either a name or a range (1-65535 when no port is given).
func portParts(p networkingv1.NetworkPolicyPort) (proto corev1.Protocol, start, end int32, named string) {
	proto = corev1.ProtocolTCP
	if p.Protocol != nil {
		proto = *p.Protocol
	}
	switch {
	case p.Port == nil:
		return proto, 1, 65535, ""
	case p.Port.StrVal != "":
		return proto, 0, 0, p.Port.StrVal
	}
	start, end = p.Port.IntVal, p.Port.IntVal
	if p.EndPort != nil {
		end = *p.EndPort
	}
	return proto, start, end, ""
}

// ClusterNetworkPolicies renders the model as ClusterNetworkPolicies of the
// Admin tier (v1beta1), within that API's limits: 25 rules per direction,
// 25 peers and protocols per rule, 25 networks per peer. Rules are those of
// AdminNetworkPolicies, split to the smaller limits.
func (m Model) ClusterNetworkPolicies(priority int32) ([]npav1beta1.ClusterNetworkPolicy, error) {
	objects, err := m.adminObjects(priority, cnpLimits)
	if err != nil {
		return nil, err
	}
	out := make([]npav1beta1.ClusterNetworkPolicy, 0, len(objects))
	for _, o := range objects {
		cnp := npav1beta1.ClusterNetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: npav1beta1.GroupVersion.String(), Kind: "ClusterNetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Labels: AdminTierLabels(m.Namespace)},
			Spec: npav1beta1.ClusterNetworkPolicySpec{
				Tier:     npav1beta1.AdminTier,
				Priority: o.priority,
				Subject:  npav1beta1.ClusterNetworkPolicySubject{Namespaces: namespaceSelector(m.Namespace)},
			},
		}
		for _, r := range o.ingress {
			var from []npav1beta1.ClusterNetworkPolicyIngressPeer
			for _, p := range cnpEgressPeers(r.peers) {
				from = append(from, npav1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: p.Namespaces, Pods: p.Pods})
			}
			cnp.Spec.Ingress = append(cnp.Spec.Ingress, npav1beta1.ClusterNetworkPolicyIngressRule{
				Name: r.name, Action: cnpAction(r.deny), From: from, Protocols: cnpProtocols(r.ports)})
		}
		for _, r := range o.egress {
			cnp.Spec.Egress = append(cnp.Spec.Egress, npav1beta1.ClusterNetworkPolicyEgressRule{
				Name: r.name, Action: cnpAction(r.deny), To: cnpEgressPeers(r.peers), Protocols: cnpProtocols(r.ports)})
		}
		out = append(out, cnp)
	}
	return out, nil
}

func cnpAction(deny bool) npav1beta1.ClusterNetworkPolicyRuleAction {
	if deny {
		return npav1beta1.ClusterNetworkPolicyRuleActionDeny
	}
	return npav1beta1.ClusterNetworkPolicyRuleActionPass
}

func cnpEgressPeers(peers []adminPeer) []npav1beta1.ClusterNetworkPolicyEgressPeer {
	out := make([]npav1beta1.ClusterNetworkPolicyEgressPeer, 0, len(peers))
	for _, p := range peers {
		var e npav1beta1.ClusterNetworkPolicyEgressPeer
		switch {
		case p.namespaces != nil:
			e.Namespaces = p.namespaces.DeepCopy()
		case p.pods != nil:
			e.Pods = &npav1beta1.NamespacedPod{NamespaceSelector: *p.pods.namespaces.DeepCopy(), PodSelector: *p.pods.pods.DeepCopy()}
		default:
			for _, n := range p.networks {
				e.Networks = append(e.Networks, npav1beta1.CIDR(n))
			}
		}
		out = append(out, e)
	}
	return out
}

// cnpProtocols translates NetworkPolicy ports as anpPorts does.
func cnpProtocols(ports []networkingv1.NetworkPolicyPort) []npav1beta1.ClusterNetworkPolicyProtocol {
	if len(ports) == 0 {
		return nil
	}
	out := make([]npav1beta1.ClusterNetworkPolicyProtocol, 0, len(ports))
	for _, p := range ports {
		proto, start, end := passPortParts(p)
		var port *npav1beta1.Port
		// A protocol matched on every port still names the range: the
		// CRD refuses a protocol without properties ("tcp: {}").
		switch {
		case start == end:
			port = &npav1beta1.Port{Number: start}
		default:
			port = &npav1beta1.Port{Range: &npav1beta1.PortRange{Start: start, End: end}}
		}
		var c npav1beta1.ClusterNetworkPolicyProtocol
		switch proto {
		case corev1.ProtocolUDP:
			c.UDP = &npav1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}
		case corev1.ProtocolSCTP:
			c.SCTP = &npav1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}
		default:
			c.TCP = &npav1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}
		}
		out = append(out, c)
	}
	return out
}
