package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

func TestValidateNamespace(t *testing.T) {
	const detail = `must be "true" (isolate the project) or "false" (no isolation), in lower case and quoted in YAML; or remove the label to turn isolation off`
	labelPath := field.NewPath("metadata", "labels").Key("moat.dev/isolated")
	withLabel := func(value string) *corev1.Namespace { return namespace("demo-project-1", value) }
	const groupDetail = `must be "true" (admit the namespaces of the project group, the default) or "false" (admit the namespace alone), in lower case and quoted in YAML; or remove the label`
	groupPath := field.NewPath("metadata", "labels").Key("moat.dev/group-ingress")
	withGroupIngress := func(ns *corev1.Namespace, value string) *corev1.Namespace {
		ns.Labels["moat.dev/group-ingress"] = value
		return ns
	}

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
		{name: "group ingress false", ns: withGroupIngress(withLabel("true"), "false"), wantIsolated: true},
		{name: "group ingress true", ns: withGroupIngress(withLabel("true"), "true"), wantIsolated: true},
		{name: "group ingress invalid", ns: withGroupIngress(withLabel("true"), "no"), wantIsolated: true,
			wantErrs: field.ErrorList{field.Invalid(groupPath, "no", groupDetail)}},
		{name: "both invalid", ns: withGroupIngress(withLabel("yes"), ""),
			wantErrs: field.ErrorList{field.Invalid(labelPath, "yes", detail), field.Invalid(groupPath, "", groupDetail)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkFindings(t, ValidateNamespace(tc.ns), nil, tc.wantErrs, nil)

			if got := v1alpha1.Isolated(tc.ns); got != tc.wantIsolated {
				t.Errorf("v1alpha1.Isolated = %v, want %v", got, tc.wantIsolated)
			}
		})
	}
}

// FuzzValidateNamespace: any pair of label values is either accepted, and
// then read as written, or refused at the field of the bad value; a group
// ingress value that is not "true" never admits the group (fail closed).
func FuzzValidateNamespace(f *testing.F) {
	for _, seed := range [][2]string{{"true", "false"}, {"false", "true"}, {"True", ""}, {"yes", "no"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, isolated, group string) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{
			v1alpha1.IsolationLabel: isolated, v1alpha1.GroupIngressLabel: group}}}
		errs := ValidateNamespace(ns)
		bad := map[string]bool{}
		for _, e := range errs {
			bad[e.Field] = true
		}
		for label, value := range ns.Labels {
			valid := value == "true" || value == "false"
			if path := field.NewPath("metadata", "labels").Key(label).String(); bad[path] == valid {
				t.Errorf("%s=%q: error at %s = %v, want %v", label, value, path, bad[path], !valid)
			}
		}
		if v1alpha1.Isolated(ns) != (isolated == "true") || v1alpha1.AdmitsGroup(ns) != (group == "true") {
			t.Errorf("Isolated = %v, AdmitsGroup = %v for %q, %q", v1alpha1.Isolated(ns), v1alpha1.AdmitsGroup(ns), isolated, group)
		}
	})
}
