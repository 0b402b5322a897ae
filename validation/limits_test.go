package validation

import (
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"moat.dev/moat/api/v1alpha1"
)

// TestCRDLimitsMatchValidation ties the limits of the generated CRD (from the
// kubebuilder markers) to the constants that validation enforces offline, so
// that `moat validate` rejects exactly the lists the API server rejects.
func TestCRDLimitsMatchValidation(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "manifests", "crd", "bases", "moat.dev_networkallowlists.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != v1alpha1.GroupVersion.Version {
		t.Fatalf("want exactly the version %s, got %d versions", v1alpha1.GroupVersion.Version, len(crd.Spec.Versions))
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]

	maxItems := func(name string, s apiextensionsv1.JSONSchemaProps, want int) {
		t.Helper()
		if s.MaxItems == nil || *s.MaxItems != int64(want) {
			t.Errorf("%s: CRD maxItems = %v, validation enforces %d", name, s.MaxItems, want)
		}
	}
	maxLength := func(name string, s apiextensionsv1.JSONSchemaProps, want int) {
		t.Helper()
		if s.MaxLength == nil || *s.MaxLength != int64(want) {
			t.Errorf("%s: CRD maxLength = %v, validation enforces %d", name, s.MaxLength, want)
		}
	}
	for _, dir := range []struct{ rules, peers string }{{"ingress", "from"}, {"egress", "to"}} {
		rules := spec.Properties[dir.rules]
		maxItems("spec."+dir.rules, rules, v1alpha1.MaxRules)
		rule := rules.Items.Schema
		maxItems("spec."+dir.rules+"[]."+dir.peers, rule.Properties[dir.peers], v1alpha1.MaxPeers)
		maxItems("spec."+dir.rules+"[].ports", rule.Properties["ports"], v1alpha1.MaxPorts)
		peer := rule.Properties[dir.peers].Items.Schema
		maxItems("ipBlock.except", peer.Properties["ipBlock"].Properties["except"], v1alpha1.MaxExcept)
		maxLength("namespace", peer.Properties["namespace"], utilvalidation.DNS1123LabelMaxLength)
		maxLength("service.namespace", peer.Properties["service"].Properties["namespace"], utilvalidation.DNS1123LabelMaxLength)
		maxLength("service.name", peer.Properties["service"].Properties["name"], utilvalidation.DNS1035LabelMaxLength)
	}
}
