package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Well-known names shared by every part of moat.
const (
	// IsolationLabel on a Namespace turns project network isolation on ("true")
	// or off ("false" or absent). Any other value is rejected.
	IsolationLabel = "moat.dev/isolated"

	// GroupIngressLabel on an isolated Namespace says whether it admits its
	// project group (the namespaces that share its --project-label value):
	// "true" or absent, it does; "false", it admits only itself (and what
	// the flags and its allowlists admit). Any other value is rejected, and
	// read as "false" (fail closed).
	GroupIngressLabel = "moat.dev/group-ingress"

	// ManagedByLabel and ManagedByValue mark every object moat creates.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "moat"

	// NamespaceNameLabel is the immutable label the API server sets on every
	// Namespace; moat selects peer namespaces by it and by nothing else.
	NamespaceNameLabel = "kubernetes.io/metadata.name"

	// ConditionReady is the condition type that reports whether an allowlist is
	// fully in force.
	ConditionReady = "Ready"
)

// Reasons reported on the Ready condition of a NetworkAllowlist.
const (
	// ReasonApplied: every rule is in force.
	ReasonApplied = "Applied"
	// ReasonIsolationDisabled: the namespace is not isolated, so nothing is generated.
	ReasonIsolationDisabled = "IsolationDisabled"
	// ReasonServiceNotFound: a service peer names a Service that does not exist; the peer is dropped.
	ReasonServiceNotFound = "ServiceNotFound"
	// ReasonServiceSelectorEmpty: a service peer names a Service without a selector; the peer is dropped.
	ReasonServiceSelectorEmpty = "ServiceSelectorEmpty"
	// ReasonServicePortNotFound: a port of a service peer matches no port of the Service; the port is dropped.
	ReasonServicePortNotFound = "ServicePortNotFound"
	// ReasonApplyFailed: the generated NetworkPolicies could not be written.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonProjectLabelUnset: a project peer is used while moat has no project label
	// (--project-label); the peer is dropped.
	ReasonProjectLabelUnset = "ProjectLabelUnset"
	// ReasonAPIServerNotFound: a kubernetesAPI peer is used while the default/kubernetes
	// Service has no endpoints; the peer is dropped.
	ReasonAPIServerNotFound = "APIServerNotFound"
	// ReasonPolicyConflict: a NetworkPolicy that moat does not manage already has the generated name,
	// or another allowlist of the namespace maps to the same (shortened) policy name.
	ReasonPolicyConflict = "PolicyConflict"
)

// NetworkAllowlistSpec lists the traffic that an isolated project lets in and out.
type NetworkAllowlistSpec struct {
	// Ingress rules allow traffic into this project from the listed peers.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Ingress []IngressRule `json:"ingress,omitempty"`

	// Egress rules allow traffic out of this project to the listed peers. Once a
	// project holds one egress rule, only allowlisted egress (plus DNS) leaves it.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Egress []EgressRule `json:"egress,omitempty"`
}

// IngressRule allows traffic from any of its peers to any of its ports.
// +kubebuilder:validation:XValidation:rule="self.from.all(p, !has(p.kubernetesAPI))",message="kubernetesAPI is an egress peer: the API server is reached from the project, it does not connect into it",fieldPath=".from"
type IngressRule struct {
	// From lists the peers allowed in. At least one is required.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	From []Peer `json:"from"`

	// Ports the traffic may reach. Empty means every port.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Ports []Port `json:"ports,omitempty"`
}

// EgressRule allows traffic to any of its peers on any of its ports.
type EgressRule struct {
	// To lists the peers that may be reached. At least one is required.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	To []Peer `json:"to"`

	// Ports the traffic may reach. For a service peer these are the Service's
	// ports (what clients dial); moat translates them to target ports. Empty
	// means every port (every target port of a Service).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Ports []Port `json:"ports,omitempty"`
}

// Peer is one source or destination. Exactly one field must be set.
// +kubebuilder:validation:XValidation:rule="(has(self.namespace) ? 1 : 0) + (has(self.service) ? 1 : 0) + (has(self.ipBlock) ? 1 : 0) + (has(self.project) ? 1 : 0) + (has(self.kubernetesAPI) ? 1 : 0) == 1",message="exactly one of namespace, service, ipBlock, project or kubernetesAPI must be set"
type Peer struct {
	// Namespace names a whole project (every pod in it).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// Service names a Service; its selected pods and target ports are the peer.
	// +optional
	Service *ServiceReference `json:"service,omitempty"`

	// IPBlock is a network outside the cluster.
	// +optional
	IPBlock *IPBlock `json:"ipBlock,omitempty"`

	// Project names a group of namespaces: every namespace whose project
	// label (moat's --project-label, e.g. kubesphere.io/workspace) has this
	// value, including namespaces added to the group later. Only admins and
	// trusted controllers may set that label. Requires --project-label.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Project string `json:"project,omitempty"`

	// KubernetesAPI is the cluster's API server: the current endpoints of
	// the default/kubernetes Service in the EndpointSlice the API server
	// itself writes (named kubernetes; other slices are ignored), followed
	// as they change, on their own ports. Egress only; the rule's ports do not apply
	// to it.
	// +optional
	KubernetesAPI *KubernetesAPIPeer `json:"kubernetesAPI,omitempty"`
}

// KubernetesAPIPeer selects the Kubernetes API server. It has no fields:
// write it as kubernetesAPI: {}.
type KubernetesAPIPeer struct{}

// ServiceReference names a Service, in this project or another one.
type ServiceReference struct {
	// Namespace of the Service; defaults to the allowlist's own namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// Name of the Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// IPBlock is a CIDR, optionally with holes, as in NetworkPolicy.
// +kubebuilder:validation:XValidation:rule="isCIDR(self.cidr)",message="cidr must be a valid CIDR such as 10.1.0.0/24 or 2001:db8::/64",fieldPath=".cidr"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self.cidr) || cidr(self.cidr).masked() == cidr(self.cidr)",message="cidr must not have host bits set: use the network address (e.g. 10.1.0.0/24, not 10.1.0.1/24)",fieldPath=".cidr"
// +kubebuilder:validation:XValidation:rule="!has(self.except) || !isCIDR(self.cidr) || self.except.all(e, isCIDR(e) && cidr(self.cidr).containsCIDR(e))",message="every except entry must be a CIDR of the same address family inside cidr",fieldPath=".except"
// +kubebuilder:validation:XValidation:rule="!has(self.except) || !isCIDR(self.cidr) || self.except.all(e, !isCIDR(e) || cidr(e).prefixLength() > cidr(self.cidr).prefixLength())",message="every except entry must be smaller than cidr: an except equal to cidr leaves nothing of the peer",fieldPath=".except"
type IPBlock struct {
	// CIDR of the network, e.g. 192.168.1.1/32.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=43
	CIDR string `json:"cidr"`

	// Except lists CIDRs inside CIDR that are not part of the peer.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=43
	Except []string `json:"except,omitempty"`
}

// Port is a protocol and port (or range), as in NetworkPolicy.
// +kubebuilder:validation:XValidation:rule="!has(self.port) || type(self.port) != int || (self.port >= 1 && self.port <= 65535)",message="port must be between 1 and 65535",fieldPath=".port"
// +kubebuilder:validation:XValidation:rule="!has(self.port) || type(self.port) != string || (self.port.matches('^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$') && self.port.matches('[a-z]') && !self.port.contains('--'))",message="a named port must be 1-15 lowercase letters, digits and '-', contain a letter, and not start or end with '-' or contain '--'",fieldPath=".port"
// +kubebuilder:validation:XValidation:rule="!has(self.endPort) || (has(self.port) && type(self.port) == int)",message="endPort requires a numeric port",fieldPath=".endPort"
// +kubebuilder:validation:XValidation:rule="!has(self.endPort) || !has(self.port) || type(self.port) != int || self.endPort >= self.port",message="endPort must not be below port",fieldPath=".endPort"
type Port struct {
	// Protocol is TCP, UDP or SCTP. Defaults to TCP. SCTP needs a cluster
	// that supports it (moat's --sctp-enabled).
	// +optional
	// +kubebuilder:default=TCP
	// +kubebuilder:validation:Enum=TCP;UDP;SCTP
	Protocol *corev1.Protocol `json:"protocol,omitempty"`

	// Port is a number or a named port. Empty means every port.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=15
	Port *intstr.IntOrString `json:"port,omitempty"`

	// EndPort, with a numeric Port, makes the range Port..EndPort.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	EndPort *int32 `json:"endPort,omitempty"`
}

// NetworkAllowlistStatus reports what moat made of an allowlist.
type NetworkAllowlistStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, with a reason such as Applied, ServiceNotFound or IsolationDisabled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Policies names the NetworkPolicies generated from this allowlist.
	// +optional
	// +listType=atomic
	Policies []string `json:"policies,omitempty"`
}

// NetworkAllowlist opens an isolated project to other projects, Services and
// external networks. It lives in the project it opens up.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=nal,categories=moat
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Policies",type=string,JSONPath=`.status.policies`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NetworkAllowlist struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NetworkAllowlistSpec   `json:"spec,omitempty"`
	Status NetworkAllowlistStatus `json:"status,omitempty"`
}

// NetworkAllowlistList is a list of NetworkAllowlists.
// +kubebuilder:object:root=true
type NetworkAllowlistList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkAllowlist `json:"items"`
}
