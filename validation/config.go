// Package validation holds every admission rule of moat as pure functions:
// objects and lookups in, a field.ErrorList and warnings out. The validating
// webhooks and `moat validate` call the very same functions.
package validation

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"moat.dev/moat/api/v1alpha1"
)

// Config is the cluster configuration that the rules depend on. The zero
// value is the safe default: SCTP off, no pod or service CIDRs known.
type Config struct {
	// SCTPEnabled declares that the cluster's network plugin supports SCTP
	// (moat's --sctp-enabled flag).
	SCTPEnabled bool
	// PodCIDRs and ServiceCIDRs are the cluster's pod and Service networks,
	// used to warn about ipBlocks that select cluster-internal addresses.
	PodCIDRs     []netip.Prefix
	ServiceCIDRs []netip.Prefix

	// ProtectedNamespaces may not be isolated (see
	// v1alpha1.IsProtectedNamespace; nil means its defaults).
	ProtectedNamespaces []string
	// TenantNetworkPolicies says what happens to a NetworkPolicy that
	// admits traffic beyond what moat admits in an isolated namespace (see
	// ValidateTenantNetworkPolicy); "" means TenantPoliciesRestrict.
	TenantNetworkPolicies TenantPolicyMode
	// Isolation is what moat admits in every isolated namespace, whatever
	// its allowlists say (moat serve's --allowed-ingress-* and --dns-service).
	Isolation IsolationBaseline
	// ProjectLabel is the Namespace label that groups namespaces into
	// projects (moat's --project-label); empty for none.
	ProjectLabel string
}

// Cluster answers the lookups that some rules need. The webhook serves them
// from the manager's cache; `moat validate` from the manifests it was given
// (and a live cluster with --kubeconfig).
//
// Each method returns (nil, nil) when the object does not exist, and a non-nil
// error only when the lookup itself failed.
type Cluster interface {
	// Service returns the named Service.
	Service(namespace, name string) (*corev1.Service, error)
	// Namespace returns the named Namespace.
	Namespace(name string) (*corev1.Namespace, error)
	// Services returns every Service in a namespace.
	Services(namespace string) ([]*corev1.Service, error)
	// Allowlists returns every NetworkAllowlist in a namespace.
	Allowlists(namespace string) ([]*v1alpha1.NetworkAllowlist, error)
}
