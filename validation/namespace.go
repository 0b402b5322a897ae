package validation

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

// isolationLabelPath is the field path of the isolation label in errors.
var isolationLabelPath = field.NewPath("metadata", "labels").Key(v1alpha1.IsolationLabel)

// ValidateNamespace checks the moat.dev/isolated label of a Namespace: it may
// be absent, "true" or "false" (case-sensitive). A nil Namespace is valid.
// Whether a valid label turns isolation on is v1alpha1.Isolated.
func ValidateNamespace(ns *corev1.Namespace) field.ErrorList {
	if ns == nil {
		return nil
	}
	value, ok := ns.Labels[v1alpha1.IsolationLabel]
	if !ok || value == v1alpha1.IsolationOn || value == v1alpha1.IsolationOff {
		return nil
	}
	return field.ErrorList{field.Invalid(isolationLabelPath, value,
		`must be "true" (isolate the project) or "false" (no isolation), in lower case and quoted in YAML; or remove the label to turn isolation off`)}
}
