package v1alpha1

import (
	"cmp"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// This file is the one home of the small rules that validation, policy
// rendering, the controller and `moat validate` all need: what a peer is,
// which namespace a Service peer names, whether a namespace is isolated and
// whether a NetworkPolicy can select a Service. Callers use these instead of
// repeating them.

// Limits of the NetworkAllowlist schema. The kubebuilder markers on the types
// above carry the same numbers (markers cannot name constants); a test of
// package validation checks the generated CRD against these.
const (
	// MaxRules is the most ingress or egress rules an allowlist may hold.
	MaxRules = 64
	// MaxPeers is the most peers of one rule.
	MaxPeers = 64
	// MaxPorts is the most ports of one rule.
	MaxPorts = 64
	// MaxExcept is the most except entries of one ipBlock.
	MaxExcept = 32
)

// PeerKind names the field a Peer sets.
type PeerKind string

// The kinds of peer, named after their fields.
const (
	PeerNamespace PeerKind = "namespace"
	PeerService   PeerKind = "service"
	PeerIPBlock   PeerKind = "ipBlock"
	PeerProject   PeerKind = "project"
	PeerKubeAPI   PeerKind = "kubernetesAPI"
)

// PeerKinds lists, in declaration order, every peer kind; error messages
// name them in this order.
var PeerKinds = []PeerKind{PeerNamespace, PeerService, PeerIPBlock, PeerProject, PeerKubeAPI}

// Kinds returns the kinds the peer sets, in the order of PeerKinds. A valid
// peer sets exactly one (the CRD's CEL rule and validation enforce it).
func (p *Peer) Kinds() []PeerKind {
	var kinds []PeerKind
	if p.Namespace != "" {
		kinds = append(kinds, PeerNamespace)
	}
	if p.Service != nil {
		kinds = append(kinds, PeerService)
	}
	if p.IPBlock != nil {
		kinds = append(kinds, PeerIPBlock)
	}
	if p.Project != "" {
		kinds = append(kinds, PeerProject)
	}
	if p.KubernetesAPI != nil {
		kinds = append(kinds, PeerKubeAPI)
	}
	return kinds
}

// Kind returns the single kind the peer sets, and false when it sets none
// or more than one (such a peer selects nothing).
func (p *Peer) Kind() (PeerKind, bool) {
	kinds := p.Kinds()
	if len(kinds) != 1 {
		return "", false
	}
	return kinds[0], true
}

// NamespaceIn returns the namespace of the referenced Service for an
// allowlist in allowlistNamespace: the reference's own namespace, or the
// allowlist's when the reference leaves it empty.
func (r *ServiceReference) NamespaceIn(allowlistNamespace string) string {
	return cmp.Or(r.Namespace, allowlistNamespace)
}

// IsolationLabel values. Any other value of the label is invalid.
const (
	IsolationOn  = "true"
	IsolationOff = "false"
)

// Isolated reports whether a Namespace has project network isolation on:
// its IsolationLabel is exactly "true". A nil Namespace, a missing label,
// "false" and any invalid value mean off (validation rejects invalid values
// before they are stored).
func Isolated(ns *corev1.Namespace) bool {
	return ns != nil && ns.Labels[IsolationLabel] == IsolationOn
}

// ProjectOf returns the project (group of namespaces) of ns under the
// project label key: the label's value, and false when key is empty (no
// project label configured), ns is nil or the label is absent or empty. An
// empty value names no group, so that it never joins unrelated namespaces.
func ProjectOf(ns *corev1.Namespace, key string) (string, bool) {
	if key == "" || ns == nil {
		return "", false
	}
	value := ns.Labels[key]
	return value, value != ""
}

// AdmitsGroup reports whether an isolated ns admits its project group: its
// GroupIngressLabel is absent or "true". "false" and any invalid value mean
// it does not (fail closed; validation rejects invalid values).
func AdmitsGroup(ns *corev1.Namespace) bool {
	if ns == nil {
		return false
	}
	value, ok := ns.Labels[GroupIngressLabel]
	return !ok || value == IsolationOn
}

// UsesKubernetesAPI reports whether any egress rule of the allowlist has a
// kubernetesAPI peer.
func (s *NetworkAllowlistSpec) UsesKubernetesAPI() bool {
	for i := range s.Egress {
		for j := range s.Egress[i].To {
			if s.Egress[i].To[j].KubernetesAPI != nil {
				return true
			}
		}
	}
	return false
}

// ProtocolOrTCP is the protocol of a port, service port or endpoint port:
// the API server defaults an unset one to TCP, and objects read offline may
// not be defaulted.
func ProtocolOrTCP(p *corev1.Protocol) corev1.Protocol {
	if p == nil || *p == "" {
		return corev1.ProtocolTCP
	}
	return *p
}

// TargetPort is the port on the pods that a Service port forwards to: its
// targetPort, numeric or named, or the port number itself when targetPort is
// unset (as the API server defaults it).
func TargetPort(sp corev1.ServicePort) intstr.IntOrString {
	tp := sp.TargetPort
	if (tp.Type == intstr.Int && tp.IntVal == 0) || (tp.Type == intstr.String && tp.StrVal == "") {
		return intstr.FromInt32(sp.Port)
	}
	return tp
}

// ServiceSelection says whether a NetworkPolicy can select the pods behind
// a Service.
type ServiceSelection int

const (
	// ServiceSelectable: the Service selects pods by labels, which a
	// NetworkPolicy podSelector can match.
	ServiceSelectable ServiceSelection = iota
	// ServiceExternalName: the Service is a DNS alias outside the cluster
	// and selects no pods.
	ServiceExternalName
	// ServiceWithoutSelector: the Service has no selector (its endpoints
	// are managed by hand or by another controller), so no pod label
	// identifies them.
	ServiceWithoutSelector
)

// SelectionOf classifies svc; see ServiceSelection.
func SelectionOf(svc *corev1.Service) ServiceSelection {
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return ServiceExternalName
	case len(svc.Spec.Selector) == 0:
		return ServiceWithoutSelector
	default:
		return ServiceSelectable
	}
}

// ServiceRefs returns every Service reference of the allowlist's ingress and
// egress peers, in order, with duplicates.
func (s *NetworkAllowlistSpec) ServiceRefs() []*ServiceReference {
	var refs []*ServiceReference
	for i := range s.Ingress {
		refs = appendServiceRefs(refs, s.Ingress[i].From)
	}
	for i := range s.Egress {
		refs = appendServiceRefs(refs, s.Egress[i].To)
	}
	return refs
}

func appendServiceRefs(refs []*ServiceReference, peers []Peer) []*ServiceReference {
	for i := range peers {
		if peers[i].Service != nil {
			refs = append(refs, peers[i].Service)
		}
	}
	return refs
}
