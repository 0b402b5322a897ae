package validation

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

// isolationLabelPath is the field path of the isolation label in errors.
var isolationLabelPath = field.NewPath("metadata", "labels").Key(v1alpha1.IsolationLabel)

// groupIngressLabelPath is the field path of the group ingress label.
var groupIngressLabelPath = field.NewPath("metadata", "labels").Key(v1alpha1.GroupIngressLabel)

// ValidateNamespace checks moat's labels of a Namespace: moat.dev/isolated
// and moat.dev/group-ingress may each be absent, "true" or "false"
// (case-sensitive). A nil Namespace is valid. Whether valid labels turn
// isolation on and admit the project group is v1alpha1.Isolated and
// v1alpha1.AdmitsGroup.
func ValidateNamespace(ns *corev1.Namespace) field.ErrorList {
	if ns == nil {
		return nil
	}
	var errs field.ErrorList
	if value, ok := ns.Labels[v1alpha1.IsolationLabel]; ok && !trueOrFalse(value) {
		errs = append(errs, field.Invalid(isolationLabelPath, value,
			`must be "true" (isolate the project) or "false" (no isolation), in lower case and quoted in YAML; or remove the label to turn isolation off`))
	}
	if value, ok := ns.Labels[v1alpha1.GroupIngressLabel]; ok && !trueOrFalse(value) {
		errs = append(errs, field.Invalid(groupIngressLabelPath, value,
			`must be "true" (admit the namespaces of the project group, the default) or "false" (admit the namespace alone), in lower case and quoted in YAML; or remove the label`))
	}
	return errs
}

// trueOrFalse reports whether a boolean label holds one of its two values.
func trueOrFalse(value string) bool {
	return value == v1alpha1.IsolationOn || value == v1alpha1.IsolationOff
}
