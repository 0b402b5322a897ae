// Package controller holds the isolation controller: the reconciler that makes
// every namespace's NetworkPolicies and NetworkAllowlist statuses match what
// policy.Render says, and the Converger that the mutating Namespace webhook
// uses to write the first policies during admission.
//
// The reconcile key is a namespace. Namespaces, NetworkAllowlists, the
// Services that allowlists name (and the cluster DNS Service) and the
// NetworkPolicies moat manages all map to the namespace they concern. A
// converged namespace causes no write at all.
package controller

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/validation"
)

// FieldManager is the server-side apply field manager of every NetworkPolicy
// moat writes.
const FieldManager = "moat"

// EventSource is the reporting controller of the Events moat records.
const EventSource = "moat"

// DefaultMaxConcurrentReconciles is the number of namespaces reconciled in
// parallel when Options.MaxConcurrentReconciles is zero.
const DefaultMaxConcurrentReconciles = 4

// Options configure the isolation controller.
type Options struct {
	// Config is moat's one configuration value, the same the webhooks get:
	// Config.Policy says what moat admits (allowed ingress namespaces and
	// CIDRs, DNS, the project label, nodes, protected namespaces),
	// Config.TenantNetworkPolicies the mode of the tenant NetworkPolicy
	// check: unless off, the user-written policies of an isolated
	// namespace are checked against what moat admits and those that admit
	// more are reported (Event and metric).
	Config validation.Config

	// Client reads from the cache and writes to the API server. nil means
	// the manager's client. Tests pass a wrapping client to count writes.
	Client client.Client

	// APIReader reads from the API server directly. nil means the
	// manager's. It is used only to check that no user policy holds a name
	// moat is about to write, since the cache may hold managed policies only.
	APIReader client.Reader

	// MaxConcurrentReconciles is the number of namespaces reconciled in
	// parallel; zero means DefaultMaxConcurrentReconciles.
	MaxConcurrentReconciles int

	// SkipNameValidation lets several managers in one process register the
	// controller under the same name (tests that restart the manager).
	SkipNameValidation bool
}
