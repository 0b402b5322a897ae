package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"moat.dev/moat/api/v1alpha1"
)

// A protected namespace gets no policy whatever its label says, and each of
// its allowlists says why.
func TestRenderProtectedNamespace(t *testing.T) {
	al := allowlist("web", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(cidrRef("10.1.0.1/32")))}})
	for _, tc := range []struct {
		namespace string
		cfg       Config
		protected bool
	}{
		{"kube-system", Config{}, true},
		{"kube-node-lease", Config{}, true},
		{"moat-system", Config{}, true},
		{"platform", Config{ProtectedNamespaces: []string{"platform"}}, true},
		{"kube-system", Config{ProtectedNamespaces: []string{}}, false},
		{"demo-project-1", Config{}, false},
	} {
		in := Input{Namespace: isolatedNamespace(tc.namespace), Allowlists: []*v1alpha1.NetworkAllowlist{al}}
		got, err := Render(in, servicesOf(), tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !tc.protected {
			if len(got.Policies) == 0 {
				t.Errorf("%s with %v: no policy rendered for a namespace that is not protected", tc.namespace, tc.cfg.ProtectedNamespaces)
			}
			continue
		}
		want := Result{Allowlists: map[string]AllowlistResult{"web": {Problems: []Problem{ProtectedProblem(tc.namespace)}}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.namespace, diff)
		}
	}
}
