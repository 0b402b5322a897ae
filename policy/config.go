package policy

import (
	"net/netip"

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

	// DNSIPs are node-local DNS caches (e.g. 169.254.25.10) kept reachable
	// on UDP and TCP 53 once egress is restricted, next to the DNS
	// Service's pods. Order and duplicates do not matter.
	DNSIPs []netip.Addr

	// ProjectLabel is the Namespace label key that groups namespaces into
	// projects (e.g. kubesphere.io/workspace); empty for none. Isolated
	// namespaces admit ingress from the namespaces of their own group, and
	// allowlist project peers select a group by it.
	ProjectLabel string

	// AllowIngressFromNodes admits ingress from every node's addresses
	// (Input.NodeAddresses) into isolated projects.
	AllowIngressFromNodes bool
	// NodeAddressTypes are the Node status address types that count as a
	// node's addresses; empty means DefaultNodeAddressTypes.
	NodeAddressTypes []corev1.NodeAddressType
	// NodeAddressAnnotations are Node annotation keys whose values (one or
	// more addresses, comma-separated, optionally with a prefix length)
	// are also node addresses: tunnel or SNAT addresses of network plugins.
	NodeAddressAnnotations []string
	// MaxNodeAddressesPerNode bounds the addresses one node contributes
	// (a kubelet writes its own Node's addresses and annotations); zero
	// means DefaultMaxNodeAddressesPerNode. MaxNodeAddresses bounds them
	// all together; zero means DefaultMaxNodeAddresses. Past a bound the
	// extra addresses are left out (fail closed) and reported.
	MaxNodeAddressesPerNode int
	MaxNodeAddresses        int

	// Enforcement says what enforces the model: NetworkPolicies only
	// (empty or EnforcementNetworkPolicy) or admin-tier objects on top of
	// them (Model.AdminTier).
	Enforcement Enforcement
	// AdminTierPriority is the priority of each namespace's main admin-tier
	// object (MinAdminTierPriority to MaxAdminTierPriority, moat serve's
	// default DefaultAdminTierPriority); its overflow objects take the one
	// below. Unused with NetworkPolicy enforcement.
	AdminTierPriority int32
}

// Defaults of the node address bounds: a node has an InternalIP or two and
// perhaps a tunnel address; 10,000 /32 peers keep moat-nodes-ingress near
// 400 KiB, well inside the API server's 3 MiB request limit.
const (
	DefaultMaxNodeAddressesPerNode = 8
	DefaultMaxNodeAddresses        = 10000
)

// DefaultDNSService is the DNS Service of a kubeadm-style cluster.
var DefaultDNSService = types.NamespacedName{Namespace: "kube-system", Name: "kube-dns"}

// Services looks up Services by namespace and name. It returns (nil, nil)
// when the Service does not exist, and an error only when the lookup itself
// failed. validation.Cluster satisfies it. Render looks each Service up at
// most once.
type Services interface {
	Service(namespace, name string) (*corev1.Service, error)
}
