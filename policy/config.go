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
