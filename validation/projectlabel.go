package validation

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ProjectLabelChanged reports whether the update from old to ns (old nil: ns
// is being created) sets, changes or removes the project label key. An empty
// key (no project label configured) never changes.
func ProjectLabelChanged(ns, old *corev1.Namespace, key string) bool {
	if key == "" || ns == nil {
		return false
	}
	value, ok := ns.Labels[key]
	if old == nil {
		return ok
	}
	oldValue, oldOK := old.Labels[key]
	return ok != oldOK || value != oldValue
}

// ValidateProjectLabel refuses a change of the project label key on a
// Namespace (see ProjectLabelChanged) by a user who may not write it:
// the label opens traffic between the namespaces of a group, so a tenant
// that could set it would join another tenant's group. mayWrite says
// whether the requesting user is an admin or a trusted controller.
func ValidateProjectLabel(ns, old *corev1.Namespace, key string, mayWrite bool) field.ErrorList {
	if mayWrite || !ProjectLabelChanged(ns, old, key) {
		return nil
	}
	path := field.NewPath("metadata", "labels").Key(key)
	return field.ErrorList{field.Forbidden(path, fmt.Sprintf(
		"%s puts the namespace into a project (a group of namespaces that admit each other's traffic), so only cluster admins and the trusted controllers of moat's --project-label-writers may set, change or remove it; ask them to move the namespace",
		key))}
}
