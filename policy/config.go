// Package policy translates a project's namespace, its NetworkAllowlists and
// the Services they name into the exact NetworkPolicies moat must own. It is
// pure: it never talks to the API server, so `moat render`, the mutating
// webhook and the controller produce identical policies.
package policy

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Config is the cluster-wide isolation configuration (moat serve's flags).
type Config struct {
	// AllowedIngressNamespaces may always reach isolated projects
	// (monitoring, the gateway's namespace, ...).
	AllowedIngressNamespaces []string
	// AllowedIngressCIDRs may always reach isolated projects (node or SNAT
	// addresses). Each must be a canonical CIDR.
	AllowedIngressCIDRs []string
	// DNSService is the cluster DNS Service kept reachable once egress is
	// restricted; nil turns the DNS exception off.
	DNSService *types.NamespacedName
}

// DefaultDNSService is the DNS Service of a kubeadm-style cluster.
var DefaultDNSService = types.NamespacedName{Namespace: "kube-system", Name: "kube-dns"}

// Services looks up Services by namespace and name. It returns (nil, nil)
// when the Service does not exist. validation.Cluster satisfies it.
type Services interface {
	Service(namespace, name string) (*corev1.Service, error)
}
