package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"moat.dev/moat/api/v1alpha1"
)

// Protected reports whether ns is a protected namespace under cfg
// (v1alpha1.IsProtectedNamespace): Render generates nothing for it, even when
// it is labelled isolated. A nil namespace is not protected.
func Protected(ns *corev1.Namespace, cfg Config) bool {
	return ns != nil && v1alpha1.IsProtectedNamespace(ns.Name, cfg.ProtectedNamespaces)
}

// ProtectedProblem says why nothing is generated in the protected namespace
// name.
func ProtectedProblem(name string) Problem {
	return Problem{
		Reason: v1alpha1.ReasonNamespaceProtected,
		Message: fmt.Sprintf("namespace %q is protected (moat serve --protected-namespaces): moat never writes NetworkPolicies into it, "+
			"because isolating a system namespace cuts the whole cluster off from it (cluster DNS, the webhooks); no NetworkPolicy is generated", name),
	}
}
