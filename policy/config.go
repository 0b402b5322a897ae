// Package policy translates a project's namespace, its NetworkAllowlists and
// the Services they name into the exact NetworkPolicies moat must own. It is
// pure: it never talks to the API server, so `moat render`, the mutating
// webhook and the controller produce identical policies.
//
// In an isolated namespace (moat.dev/isolated: "true") Render generates:
//
//   - moat-default-ingress: ingress only from the same namespace, from each
//     Config.AllowedIngressNamespaces (one peer per namespace, selected by
//     the immutable kubernetes.io/metadata.name label) and from each
//     Config.AllowedIngressCIDRs. Both lists are sorted and deduplicated, so
//     the order of the flags does not matter.
//   - moat-default-egress, once any allowlist declares an egress rule (even
//     one whose peers are all dropped: fail closed): egress only to the same
//     namespace and to the cluster DNS pods on the DNS Service's target
//     ports. When the DNS Service is missing or has no selector, the DNS pods
//     are selected by the conventional k8s-app: kube-dns label on UDP and
//     TCP 53, so that DNS keeps working.
//   - moat-allowlist-<name> per allowlist with at least one rule, owned by
//     the allowlist. Namespace peers select the namespace by name; ipBlock
//     peers are copied; Service peers select the Service's pods in its
//     namespace. For egress, the rule's ports name Service ports and become
//     their target ports; for ingress the ports are this project's own ports
//     and are kept as declared. Peers needing different port lists become
//     separate rules. A Service peer that cannot be translated is dropped and
//     reported as a Problem; a rule left without peers is dropped, never
//     widened to "everyone". When two allowlists map to one policy name (a
//     long name shortened with a hash), the first by name keeps it and the
//     other reports PolicyConflict.
//
// Outside isolation Render generates nothing and reports IsolationDisabled.
package policy

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Config is the cluster-wide isolation configuration (moat serve's flags).
type Config struct {
	// AllowedIngressNamespaces may always reach isolated projects
	// (monitoring, the gateway's namespace, ...). Order and duplicates do
	// not matter; empty names are ignored.
	AllowedIngressNamespaces []string
	// AllowedIngressCIDRs may always reach isolated projects (node or SNAT
	// addresses). Each must be a canonical CIDR (the caller validates them).
	// Order and duplicates do not matter; empty entries are ignored.
	AllowedIngressCIDRs []string
	// DNSService is the cluster DNS Service kept reachable once egress is
	// restricted; nil turns the DNS exception off.
	DNSService *types.NamespacedName
	// ProtectedNamespaces are never isolated, whatever their labels say
	// (see v1alpha1.IsProtectedNamespace; nil means its defaults).
	ProtectedNamespaces []string
}

// DefaultDNSService is the DNS Service of a kubeadm-style cluster.
var DefaultDNSService = types.NamespacedName{Namespace: "kube-system", Name: "kube-dns"}

// Services looks up Services by namespace and name. It returns (nil, nil)
// when the Service does not exist, and an error only when the lookup itself
// failed. validation.Cluster satisfies it. Render looks each Service up at
// most once.
type Services interface {
	Service(namespace, name string) (*corev1.Service, error)
}
