package kubesphere

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReader: the kinds Convert needs, decoded as KubeSphere serves them;
// the rest skipped; what cannot be read reported where it was found.
func TestReader(t *testing.T) {
	const input = `apiVersion: network.kubesphere.io/v1alpha1
kind: NamespaceNetworkPolicy
metadata: {name: np}
spec:
  ingress:
  - from: [{namespace: {name: a}}]
---
apiVersion: network.kubesphere.io/v1alpha2
kind: NamespaceNetworkPolicy
metadata: {name: future, namespace: web}
---
apiVersion: tenant.kubesphere.io/v1alpha1
kind: Workspace
metadata: {name: ws}
spec: {networkIsolation: true}
---
apiVersion: tenant.kubesphere.io/v1alpha2
kind: WorkspaceTemplate
metadata: {name: tmpl}
spec: {template: {spec: {networkIsolation: true}}}
---
apiVersion: tenant.kubesphere.io/v1alpha2
kind: WorkspaceTemplate
metadata: {name: flat}
spec: {networkIsolation: true}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {selector: {app: a}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
`
	r := NewReader()
	if err := r.Read("in.yaml", strings.NewReader(input)); err != nil {
		t.Fatal(err)
	}
	if len(r.Input.Policies) != 1 || r.Input.Policies[0].Namespace != "default" || r.Input.Policies[0].Spec.Ingress[0].From[0].Namespace.Name != "a" {
		t.Errorf("policies: %+v; want np in namespace default", r.Input.Policies)
	}
	if diff := cmp.Diff([]Workspace{{Name: "ws", NetworkIsolation: true}, {Name: "tmpl", NetworkIsolation: true}, {Name: "flat"}}, r.Input.Workspaces); diff != "" {
		t.Errorf("workspaces (-want +got):\n%s", diff)
	}
	if len(r.Input.Services) != 1 || r.Input.Services[0].Namespace != "default" {
		t.Errorf("services: %+v; want svc in namespace default", r.Input.Services)
	}
	want := []Problem{{Origin: "in.yaml", Object: ObjectRef{Kind: "NamespaceNetworkPolicy", Namespace: "web", Name: "future"}, Field: "apiVersion", Severity: SeverityError,
		Message: `"network.kubesphere.io/v1alpha2" is not supported: KubeSphere serves network.kubesphere.io/v1alpha1`}}
	if diff := cmp.Diff(want, r.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if _, ok := r.Origins[ObjectRef{Kind: "ConfigMap", Name: "other"}]; ok {
		t.Error("a ConfigMap was recorded")
	}
	problems := []Problem{{Object: ObjectRef{Kind: "Workspace", Name: "ws"}}, {Origin: "kept", Object: ObjectRef{Kind: "Workspace", Name: "ws"}}}
	r.Locate(problems)
	if problems[0].Origin != "in.yaml" || problems[1].Origin != "kept" {
		t.Errorf("Locate: origins %q, %q; want in.yaml, kept", problems[0].Origin, problems[1].Origin)
	}
}
