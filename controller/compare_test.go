package controller

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

func allowlistRef(uid string) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkAllowlist", Name: "web", UID: k8stypes.UID("uid-" + uid),
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
}

// desiredPolicy is what policy.Render produces for an allowlist: protocol
// and policyTypes set explicitly.
func desiredPolicy() networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(80)
	return networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name: "moat-allowlist-web", Namespace: "p1",
			Labels:          map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue, policy.AllowlistLabel: "web"},
			OwnerReferences: []metav1.OwnerReference{allowlistRef("1")},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.1.1/32"}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}

// livePolicy is desiredPolicy as the API server stores it: with server
// metadata, managed fields, empty slices where the request had none, and
// whatever other actors added.
func livePolicy() *networkingv1.NetworkPolicy {
	np := desiredPolicy()
	np.UID = "np-uid"
	np.ResourceVersion = "42"
	np.Generation = 1
	np.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply}}
	np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{}}
	np.Spec.Ingress[0].From[0].IPBlock.Except = []string{}
	return &np
}

func TestUpToDate(t *testing.T) {
	tests := map[string]struct {
		desired func(*networkingv1.NetworkPolicy)
		live    func(*networkingv1.NetworkPolicy)
		want    bool
	}{
		"identical apart from server metadata": {want: true},
		"extra label added by someone else": {
			live: func(np *networkingv1.NetworkPolicy) { np.Labels["team"] = "a" },
			want: true,
		},
		"extra owner reference that is not an allowlist": {
			live: func(np *networkingv1.NetworkPolicy) {
				np.OwnerReferences = append(np.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "cm"})
			},
			want: true,
		},
		"desired without protocol matches the TCP the server defaults": {
			desired: func(np *networkingv1.NetworkPolicy) { np.Spec.Ingress[0].Ports[0].Protocol = nil },
			want:    true,
		},
		"desired without policyTypes matches the types the server defaults": {
			desired: func(np *networkingv1.NetworkPolicy) { np.Spec.PolicyTypes = nil },
			want:    true,
		},
		"managed-by label removed": {
			live: func(np *networkingv1.NetworkPolicy) { delete(np.Labels, v1alpha1.ManagedByLabel) },
		},
		"allowlist label changed": {
			live: func(np *networkingv1.NetworkPolicy) { np.Labels[policy.AllowlistLabel] = "other" },
		},
		"owner reference missing": {
			live: func(np *networkingv1.NetworkPolicy) { np.OwnerReferences = nil },
		},
		"owner reference to a deleted allowlist of the same name": {
			live: func(np *networkingv1.NetworkPolicy) { np.OwnerReferences = []metav1.OwnerReference{allowlistRef("0")} },
		},
		"stale allowlist owner reference kept beside the right one": {
			live: func(np *networkingv1.NetworkPolicy) {
				np.OwnerReferences = append(np.OwnerReferences, allowlistRef("0"))
			},
		},
		"port changed": {
			live: func(np *networkingv1.NetworkPolicy) { np.Spec.Ingress[0].Ports[0].Port = ptr.To(intstr.FromInt32(81)) },
		},
		"cidr changed": {
			live: func(np *networkingv1.NetworkPolicy) { np.Spec.Ingress[0].From[0].IPBlock.CIDR = "0.0.0.0/0" },
		},
		"rule added": {
			live: func(np *networkingv1.NetworkPolicy) {
				np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
			},
		},
		"pod selector narrowed": {
			live: func(np *networkingv1.NetworkPolicy) { np.Spec.PodSelector.MatchLabels["app"] = "web" },
		},
		"policy type added": {
			live: func(np *networkingv1.NetworkPolicy) {
				np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			desired := desiredPolicy()
			live := livePolicy()
			if tc.desired != nil {
				tc.desired(&desired)
			}
			if tc.live != nil {
				tc.live(live)
			}
			if got := upToDate(&desired, live); got != tc.want {
				t.Errorf("upToDate() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestApplyConfigurationHoldsOnlyMoatsFields(t *testing.T) {
	np := *livePolicy()
	np.CreationTimestamp = metav1.Now()
	ac, err := applyConfiguration(&np)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion": "networking.k8s.io/v1",
		"kind":       "NetworkPolicy",
		"metadata": map[string]any{
			"name":      "moat-allowlist-web",
			"namespace": "p1",
			"labels":    map[string]any{"app.kubernetes.io/managed-by": "moat", "moat.dev/allowlist": "web"},
			"ownerReferences": []any{map[string]any{
				"apiVersion": "moat.dev/v1alpha1", "kind": "NetworkAllowlist", "name": "web", "uid": "uid-1",
				"controller": true, "blockOwnerDeletion": true,
			}},
		},
		"spec": map[string]any{
			"podSelector": map[string]any{},
			"policyTypes": []any{"Ingress"},
			"ingress": []any{map[string]any{
				"from":  []any{map[string]any{"ipBlock": map[string]any{"cidr": "192.168.1.1/32"}}},
				"ports": []any{map[string]any{"protocol": "TCP", "port": float64(80)}},
			}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("apply configuration (-want +got):\n%s", diff)
	}
}

func TestApplyConfigurationCarriesTheAdmissionMark(t *testing.T) {
	np := desiredPolicy()
	np.Annotations = map[string]string{AdmissionVersionAnnotation: "41"}
	ac, err := applyConfiguration(&np)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{AdmissionVersionAnnotation: "41"}, got.Metadata.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}

func TestPlan(t *testing.T) {
	managed := func(name string) *networkingv1.NetworkPolicy {
		np := livePolicy()
		np.Name = name
		return np
	}
	desiredNamed := func(name string) networkingv1.NetworkPolicy {
		np := desiredPolicy()
		np.Name = name
		return np
	}
	user := managed("moat-allowlist-taken")
	user.Labels = map[string]string{"team": "a"}
	user.OwnerReferences = nil
	userUnrelated := managed("allow-web")
	userUnrelated.Labels = nil
	changed := managed("moat-allowlist-changed")
	changed.Spec.Ingress = nil
	terminating := managed("moat-allowlist-going")
	terminating.DeletionTimestamp = ptr.To(metav1.Now())

	live := map[string]*networkingv1.NetworkPolicy{
		"moat-allowlist-same":    managed("moat-allowlist-same"),
		"moat-allowlist-changed": changed,
		"moat-allowlist-taken":   user,
		"moat-allowlist-old":     managed("moat-allowlist-old"),
		"moat-allowlist-going":   terminating,
		"allow-web":              userUnrelated,
	}
	desired := []networkingv1.NetworkPolicy{
		desiredNamed("moat-allowlist-changed"),
		desiredNamed("moat-allowlist-new"),
		desiredNamed("moat-allowlist-same"),
		desiredNamed("moat-allowlist-taken"),
	}
	got := diff(desired, live)

	names := func(nps []networkingv1.NetworkPolicy) []string {
		var out []string
		for _, np := range nps {
			out = append(out, np.Name)
		}
		return out
	}
	var deleted []string
	for _, np := range got.delete {
		deleted = append(deleted, np.Name)
	}
	if diff := cmp.Diff([]string{"moat-allowlist-changed", "moat-allowlist-new"}, names(got.apply)); diff != "" {
		t.Errorf("apply (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"moat-allowlist-old"}, deleted); diff != "" {
		t.Errorf("delete (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"moat-allowlist-taken"}, got.conflicts); diff != "" {
		t.Errorf("conflicts (-want +got):\n%s", diff)
	}
}

func TestPlanConvergedWritesNothing(t *testing.T) {
	live := livePolicy()
	got := diff([]networkingv1.NetworkPolicy{desiredPolicy()}, map[string]*networkingv1.NetworkPolicy{live.Name: live})
	if len(got.apply) != 0 || len(got.delete) != 0 || len(got.conflicts) != 0 {
		t.Errorf("plan for a converged namespace = %+v, want nothing to do", got)
	}
}
