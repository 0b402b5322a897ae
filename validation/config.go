// Package validation holds every admission rule of moat as pure functions:
// objects and lookups in, a field.ErrorList and warnings out. The validating
// webhooks and `moat validate` call the very same functions.
package validation

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// Config is moat's one configuration value: parsed and checked once from
// the flags (cmd/moat) and handed unchanged to the webhooks, the controller,
// moat validate, render and import. The zero value is the safe default: SCTP
// off, no pod or service CIDRs known, the tenant rule restricting, the
// default protected namespaces.
type Config struct {
	// SCTPEnabled declares that the cluster's network plugin supports SCTP
	// (moat's --sctp-enabled flag).
	SCTPEnabled bool
	// PodCIDRs and ServiceCIDRs are the cluster's pod and Service networks,
	// used to warn about ipBlocks that select cluster-internal addresses.
	PodCIDRs     []netip.Prefix
	ServiceCIDRs []netip.Prefix

	// TenantNetworkPolicies says what happens to a NetworkPolicy that
	// admits traffic beyond what moat admits in an isolated namespace (see
	// ValidateTenantNetworkPolicy); "" means TenantPoliciesRestrict.
	TenantNetworkPolicies TenantPolicyMode

	// Policy is what moat admits and where it never writes: the same
	// value the renderer and the controller use (protected namespaces,
	// allowed namespaces and CIDRs, DNS, the project label, nodes), so
	// that the rules and the policies can never disagree.
	Policy policy.Config
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
