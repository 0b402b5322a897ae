package v1alpha1

import "slices"

// SystemNamespaces are the namespaces of the Kubernetes control plane that
// moat never isolates: isolating kube-system closes cluster DNS to every
// other namespace.
var SystemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// DefaultSystemNamespace is the namespace moat runs in unless configured
// otherwise.
const DefaultSystemNamespace = "moat-system"

// DefaultProtectedNamespaces returns the protected namespaces used when none
// are configured: SystemNamespaces and moat's own namespace.
func DefaultProtectedNamespaces(own string) []string {
	return append(slices.Clone(SystemNamespaces), own)
}

// IsProtectedNamespace reports whether moat must leave the named namespace
// alone whatever its labels say: it never writes a NetworkPolicy into it and
// refuses to isolate it. protected is the configured list (moat serve
// --protected-namespaces); nil means DefaultProtectedNamespaces of
// DefaultSystemNamespace, and an empty non-nil list protects nothing.
//
// This is the one place that decides; the webhooks, the controller,
// policy.Render and the manifest checks all call it.
func IsProtectedNamespace(name string, protected []string) bool {
	if protected == nil {
		protected = DefaultProtectedNamespaces(DefaultSystemNamespace)
	}
	return slices.Contains(protected, name)
}

// RestrictsEgress reports whether the allowlists of a namespace make moat
// restrict its egress: once any of them declares an egress rule (even one
// whose peers are all dropped: fail closed), only allowlisted egress and DNS
// leave the namespace.
func RestrictsEgress(allowlists []*NetworkAllowlist) bool {
	for _, al := range allowlists {
		if al != nil && len(al.Spec.Egress) > 0 {
			return true
		}
	}
	return false
}

// ReasonNamespaceProtected is the Ready reason of an allowlist in a protected
// namespace (see IsProtectedNamespace): nothing is generated for it.
const ReasonNamespaceProtected = "NamespaceProtected"
