// Package kubesphere converts KubeSphere's project network isolation into
// moat objects, for `moat import kubesphere`.
//
// KubeSphere isolates a project (namespace) when it is annotated
// kubesphere.io/network-isolate: enabled, or when its workspace has network
// isolation on, and opens it with NamespaceNetworkPolicy objects
// (network.kubesphere.io/v1alpha1). Convert turns those into moat's
// moat.dev/isolated label and NetworkAllowlists that let the same traffic
// through once moat renders them, and reports, with the reason, everything
// that cannot be carried over. docs/kubesphere.md holds the mapping table.
//
// The package is pure: objects in, objects and problems out. Read decodes
// manifests; the CLI reads live clusters.
package kubesphere

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// KubeSphere's names, as its API types and network controller define them.
const (
	// IsolateAnnotation on a Namespace, with value IsolateEnabled, turns
	// project network isolation on.
	IsolateAnnotation = "kubesphere.io/network-isolate"
	IsolateEnabled    = "enabled"
	// WorkspaceLabel on a Namespace names its workspace.
	WorkspaceLabel = "kubesphere.io/workspace"
	// SNATNodeIPsAnnotation on a Node lists, separated by ";", the addresses
	// that isolated projects admit traffic from.
	SNATNodeIPsAnnotation = "kubesphere.io/snat-node-ips"
)

// Group kinds of the KubeSphere objects that Convert reads.
var (
	NamespaceNetworkPolicyKind = schema.GroupKind{Group: "network.kubesphere.io", Kind: "NamespaceNetworkPolicy"}
	WorkspaceKind              = schema.GroupKind{Group: "tenant.kubesphere.io", Kind: "Workspace"}
	WorkspaceTemplateKind      = schema.GroupKind{Group: "tenant.kubesphere.io", Kind: "WorkspaceTemplate"}
)

// NamespaceNetworkPolicy is KubeSphere's network.kubesphere.io/v1alpha1
// NamespaceNetworkPolicy, with the fields KubeSphere's controller reads.
type NamespaceNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NamespaceNetworkPolicySpec `json:"spec,omitempty"`
}

// NamespaceNetworkPolicySpec holds the rules. KubeSphere's controller
// ignores PolicyTypes: a policy restricts egress when it has an egress
// section, and always restricts ingress.
type NamespaceNetworkPolicySpec struct {
	Ingress     []IngressRule             `json:"ingress,omitempty"`
	Egress      []EgressRule              `json:"egress,omitempty"`
	PolicyTypes []networkingv1.PolicyType `json:"policyTypes,omitempty"`
}

// IngressRule admits traffic from any of From on any of Ports.
type IngressRule struct {
	Ports []networkingv1.NetworkPolicyPort `json:"ports,omitempty"`
	From  []Peer                           `json:"from,omitempty"`
}

// EgressRule admits traffic to any of To on any of Ports.
type EgressRule struct {
	Ports []networkingv1.NetworkPolicyPort `json:"ports,omitempty"`
	To    []Peer                           `json:"to,omitempty"`
}

// Peer is one of a namespace, a Service or an ipBlock.
type Peer struct {
	Namespace *NamespaceSelector    `json:"namespace,omitempty"`
	IPBlock   *networkingv1.IPBlock `json:"ipBlock,omitempty"`
	Service   *ServiceSelector      `json:"service,omitempty"`
}

// NamespaceSelector names a namespace.
type NamespaceSelector struct {
	Name string `json:"name"`
}

// ServiceSelector names a Service.
type ServiceSelector struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

// Workspace is what Convert needs of a KubeSphere workspace
// (tenant.kubesphere.io Workspace spec.networkIsolation, or WorkspaceTemplate
// spec.template.spec.networkIsolation).
type Workspace struct {
	Name             string
	NetworkIsolation bool
}
