package webhook

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"moat.dev/moat/api/v1alpha1"
)

// TestCheckRouting: the shipped configuration agrees with the flags it is
// written for, and a flag it would not route is refused with what to change.
func TestCheckRouting(t *testing.T) {
	config := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	readManifest(t, "validating-webhook-configuration.yaml", config)
	protected := v1alpha1.DefaultProtectedNamespaces("moat-system")
	for _, tc := range []struct {
		name         string
		projectLabel string
		protected    []string
		want         []string // substrings of the error; none: no error
	}{
		{name: "as shipped", projectLabel: "kubesphere.io/workspace", protected: protected},
		{name: "no project label", protected: protected},
		{name: "nothing protected", projectLabel: "kubesphere.io/workspace"},
		{name: "another project label", projectLabel: "field.cattle.io/projectId", protected: protected,
			want: []string{ProjectLabelWebhook, "--project-label=field.cattle.io/projectId", "write field.cattle.io/projectId in its objectSelector and matchConditions"}},
		{name: "another own namespace", projectLabel: "kubesphere.io/workspace", protected: v1alpha1.DefaultProtectedNamespaces("platform"),
			want: []string{ProtectedWebhook, "does not name the protected namespaces platform"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRouting(config, tc.projectLabel, tc.protected)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// Without the project-label webhook at all.
	config.Webhooks = nil
	if err := CheckRouting(config, "kubesphere.io/workspace", nil); err == nil || !strings.Contains(err.Error(), "has no webhook "+ProjectLabelWebhook) {
		t.Errorf("no webhooks: %v", err)
	}
}
