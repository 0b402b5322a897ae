package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestValidateNamespace(t *testing.T) {
	const detail = `must be "true" (isolate the project) or "false" (no isolation), in lower case and quoted in YAML; or remove the label to turn isolation off`
	labelPath := field.NewPath("metadata", "labels").Key("moat.dev/isolated")
	withLabel := func(value string) *corev1.Namespace { return namespace("demo-project-1", value) }

	cases := []struct {
		name         string
		ns           *corev1.Namespace
		wantErrs     field.ErrorList
		wantIsolated bool
	}{
		{name: "nil namespace", ns: nil},
		{name: "no labels at all", ns: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo-project-1"}}},
		{name: "label absent", ns: withLabel("")},
		{name: "true", ns: withLabel("true"), wantIsolated: true},
		{name: "false", ns: withLabel("false")},
		{name: "empty value", ns: func() *corev1.Namespace {
			ns := withLabel("")
			ns.Labels["moat.dev/isolated"] = ""
			return ns
		}(), wantErrs: field.ErrorList{field.Invalid(labelPath, "", detail)}},
		{name: "True", ns: withLabel("True"), wantErrs: field.ErrorList{field.Invalid(labelPath, "True", detail)}},
		{name: "yes", ns: withLabel("yes"), wantErrs: field.ErrorList{field.Invalid(labelPath, "yes", detail)}},
		{name: "1", ns: withLabel("1"), wantErrs: field.ErrorList{field.Invalid(labelPath, "1", detail)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkFindings(t, ValidateNamespace(tc.ns), nil, tc.wantErrs, nil)

			isolated, err := IsolationEnabled(tc.ns)
			if isolated != tc.wantIsolated {
				t.Errorf("IsolationEnabled = %v, want %v", isolated, tc.wantIsolated)
			}
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Errorf("IsolationEnabled error = %v, want none", err)
				}
				return
			}
			fieldErr, ok := err.(*field.Error)
			if !ok {
				t.Fatalf("IsolationEnabled error = %#v, want a *field.Error", err)
			}
			checkFindings(t, field.ErrorList{fieldErr}, nil, tc.wantErrs, nil)
		})
	}
}

func TestIsolationEnabledNilErrorIsUntyped(t *testing.T) {
	// Assigning the result to an existing error variable must not produce a
	// non-nil interface holding a nil *field.Error.
	var err error
	_, err = IsolationEnabled(namespace("demo-project-1", "true"))
	if err != nil {
		t.Fatalf("err = %#v, want nil", err)
	}
}
