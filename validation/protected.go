package validation

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

// ValidateNamespaceProtection refuses to isolate a protected namespace (see
// v1alpha1.IsProtectedNamespace, with the list of cfg): labelled
// moat.dev/isolated: "true", it is an error at the label that says why and
// how to fix it. Any other namespace, and a protected one without that
// label value, is valid. A nil Namespace is valid.
func ValidateNamespaceProtection(ns *corev1.Namespace, cfg Config) field.ErrorList {
	if !v1alpha1.Isolated(ns) || !v1alpha1.IsProtectedNamespace(ns.Name, cfg.Policy.ProtectedNamespaces) {
		return nil
	}
	return field.ErrorList{field.Forbidden(isolationLabelPath, fmt.Sprintf(
		"namespace %s is protected (moat serve --protected-namespaces=%s): isolating it would cut every other namespace off from it "+
			"(cluster DNS, the API server's webhooks, moat itself), so moat never writes NetworkPolicies into it; remove the label "+
			"or set it to \"false\"",
		ns.Name, strings.Join(protectedList(cfg), ",")))}
}

// protectedList is the effective list of protected namespaces of cfg.
func protectedList(cfg Config) []string {
	if cfg.Policy.ProtectedNamespaces == nil {
		return v1alpha1.DefaultProtectedNamespaces(v1alpha1.DefaultSystemNamespace)
	}
	return cfg.Policy.ProtectedNamespaces
}
