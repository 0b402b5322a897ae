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
func ValidateNamespace(ns *corev1.Namespace) field.ErrorList {
	if _, err := isolationEnabled(ns); err != nil {
		return field.ErrorList{err}
	}
	return nil
}

// IsolationEnabled reports whether a Namespace asks for project network
// isolation: true for the label value "true", false for "false", for no label
// and for a nil Namespace. Any other value returns false and an error (a
// *field.Error naming metadata.labels[moat.dev/isolated], the same one
// ValidateNamespace reports); callers that must act anyway (the controller)
// treat such a namespace as not isolated.
func IsolationEnabled(ns *corev1.Namespace) (bool, error) {
	enabled, err := isolationEnabled(ns)
	if err != nil {
		return false, err
	}
	return enabled, nil
}

func isolationEnabled(ns *corev1.Namespace) (bool, *field.Error) {
	if ns == nil {
		return false, nil
	}
	value, ok := ns.Labels[v1alpha1.IsolationLabel]
	switch {
	case !ok || value == "false":
		return false, nil
	case value == "true":
		return true, nil
	default:
		return false, field.Invalid(isolationLabelPath, value,
			`must be "true" (isolate the project) or "false" (no isolation), in lower case and quoted in YAML; or remove the label to turn isolation off`)
	}
}
