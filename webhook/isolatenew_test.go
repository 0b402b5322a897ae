package webhook

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"moat.dev/moat/api/v1alpha1"
)

func newIsolator(selector string) *NewNamespaceIsolator {
	h := &NewNamespaceIsolator{SystemNamespace: "moat-system", Trust: Trust{ServiceAccount: "system:serviceaccount:moat-system:moat", AdminGroups: DefaultAdminGroups}}
	if selector != "" {
		h.Selector = labels.SelectorFromSet(labels.Set{"tenant": selector})
	}
	return h
}

var (
	tenantUser = authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}
	adminUser  = authenticationv1.UserInfo{Username: "root", Groups: []string{"system:masters", "system:authenticated"}}
)

func TestNewNamespaceIsolator(t *testing.T) {
	addLabels := `[{"op":"add","path":"/metadata/labels","value":{"moat.dev/isolated":"true"}}]`
	optOut, err := labels.Parse("!example.com/opt-out")
	if err != nil {
		t.Fatal(err)
	}
	addLabel := `[{"op":"add","path":"/metadata/labels/moat.dev~1isolated","value":"true"}]`
	replaceLabel := `[{"op":"replace","path":"/metadata/labels/moat.dev~1isolated","value":"true"}]`
	named := func(name string, l map[string]string) *corev1.Namespace {
		ns := namespace(l)
		ns.Name = name
		return ns
	}
	for _, tc := range []struct {
		name     string
		isolator *NewNamespaceIsolator
		op       admissionv1.Operation
		ns       *corev1.Namespace
		user     authenticationv1.UserInfo
		dryRun   bool
		want     string // the JSON patch; empty for none
		warnings int
	}{
		{name: "a selector that matches a namespace without labels adds them", isolator: &NewNamespaceIsolator{Selector: optOut, SystemNamespace: "moat-system"},
			ns: namespace(nil), user: tenantUser, want: addLabels},
		{name: "matching namespace gets the label", isolator: newIsolator("a"), ns: namespace(map[string]string{"tenant": "a"}), user: tenantUser, want: addLabel},
		{name: "dry run gets the same patch", isolator: newIsolator("a"), ns: namespace(map[string]string{"tenant": "a"}), user: tenantUser, dryRun: true, want: addLabel},
		{name: "feature off", isolator: newIsolator(""), ns: namespace(map[string]string{"tenant": "a"}), user: tenantUser},
		{name: "not matching", isolator: newIsolator("a"), ns: namespace(map[string]string{"tenant": "b"}), user: tenantUser},
		{name: "no labels at all, not matching", isolator: newIsolator("a"), ns: namespace(nil), user: tenantUser},
		{name: "update is not this webhook's business", isolator: newIsolator("a"), op: admissionv1.Update, ns: namespace(map[string]string{"tenant": "a"}), user: tenantUser},
		{name: "already true", isolator: newIsolator("a"), ns: namespace(map[string]string{"tenant": "a", v1alpha1.IsolationLabel: "true"}), user: tenantUser},
		{name: "an admin may create it not isolated", isolator: newIsolator("a"), ns: namespace(map[string]string{"tenant": "a", v1alpha1.IsolationLabel: "false"}), user: adminUser},
		{name: "moat's own identity may too", isolator: newIsolator("a"), ns: namespace(map[string]string{"tenant": "a", v1alpha1.IsolationLabel: "false"}),
			user: authenticationv1.UserInfo{Username: "system:serviceaccount:moat-system:moat"}},
		{name: "a tenant may not: overwritten with a warning", isolator: newIsolator("a"), ns: namespace(map[string]string{"tenant": "a", v1alpha1.IsolationLabel: "false"}),
			user: tenantUser, want: replaceLabel, warnings: 1},
		{name: "kube-system", isolator: newIsolator("a"), ns: named("kube-system", map[string]string{"tenant": "a"}), user: adminUser},
		{name: "kube-public", isolator: newIsolator("a"), ns: named("kube-public", map[string]string{"tenant": "a"}), user: adminUser},
		{name: "kube-node-lease", isolator: newIsolator("a"), ns: named("kube-node-lease", map[string]string{"tenant": "a"}), user: adminUser},
		{name: "moat's own namespace", isolator: newIsolator("a"), ns: named("moat-system", map[string]string{"tenant": "a"}), user: adminUser},
		{name: "generateName (no name yet) is matched", isolator: newIsolator("a"), ns: named("", map[string]string{"tenant": "a"}), user: tenantUser, want: addLabel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := tc.op
			if op == "" {
				op = admissionv1.Create
			}
			req := namespaceRequest(t, op, nil, tc.ns, tc.dryRun)
			req.UserInfo = tc.user
			resp := tc.isolator.Handle(context.Background(), req)
			if !resp.Allowed {
				t.Fatalf("denied: %+v", resp.Result)
			}
			got := ""
			if len(resp.Patches) > 0 {
				data, err := json.Marshal(resp.Patches)
				if err != nil {
					t.Fatal(err)
				}
				got = string(data)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("patches (-want +got):\n%s", diff)
			}
			if len(resp.Warnings) != tc.warnings {
				t.Errorf("warnings %q, want %d", resp.Warnings, tc.warnings)
			}
		})
	}
}
