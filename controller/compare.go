package controller

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
)

// upToDate reports whether the live policy already carries everything moat
// sets on desired: its labels, its owner references and its spec (after the
// API server's defaulting). Labels and owner references that others added
// are ignored, except owner references to NetworkAllowlists, which only moat
// sets: a stale one (an allowlist deleted and re-created under the same name)
// makes the policy out of date.
func upToDate(desired, live *networkingv1.NetworkPolicy) bool {
	for k, v := range desired.Labels {
		if got, ok := live.Labels[k]; !ok || got != v {
			return false
		}
	}
	for _, want := range desired.OwnerReferences {
		if !hasOwnerReference(live.OwnerReferences, want) {
			return false
		}
	}
	for _, got := range live.OwnerReferences {
		if isAllowlistReference(got) && !hasOwnerReference(desired.OwnerReferences, got) {
			return false
		}
	}
	return equality.Semantic.DeepEqual(defaulted(desired.Spec), live.Spec)
}

func hasOwnerReference(refs []metav1.OwnerReference, want metav1.OwnerReference) bool {
	for _, ref := range refs {
		if equality.Semantic.DeepEqual(ref, want) {
			return true
		}
	}
	return false
}

func isAllowlistReference(ref metav1.OwnerReference) bool {
	return ref.APIVersion == v1alpha1.GroupVersion.String() && ref.Kind == "NetworkAllowlist"
}

// defaulted returns a copy of spec with the defaults the API server applies
// to a NetworkPolicy: TCP for ports without a protocol, and policyTypes
// derived from the rules when none are given.
func defaulted(spec networkingv1.NetworkPolicySpec) networkingv1.NetworkPolicySpec {
	out := *spec.DeepCopy()
	tcp := corev1.ProtocolTCP
	for i := range out.Ingress {
		for j := range out.Ingress[i].Ports {
			if out.Ingress[i].Ports[j].Protocol == nil {
				out.Ingress[i].Ports[j].Protocol = &tcp
			}
		}
	}
	for i := range out.Egress {
		for j := range out.Egress[i].Ports {
			if out.Egress[i].Ports[j].Protocol == nil {
				out.Egress[i].Ports[j].Protocol = &tcp
			}
		}
	}
	if len(out.PolicyTypes) == 0 {
		out.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(out.Egress) > 0 {
			out.PolicyTypes = append(out.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
	return out
}

// applyConfiguration turns a rendered NetworkPolicy into a server-side apply
// configuration holding exactly the fields moat owns: apiVersion, kind, name,
// namespace, labels, annotations (only AdmissionVersionAnnotation, during
// admission), owner references and spec.
func applyConfiguration(np *networkingv1.NetworkPolicy) (runtime.ApplyConfiguration, error) {
	intent := &networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            np.Name,
			Namespace:       np.Namespace,
			Labels:          np.Labels,
			Annotations:     np.Annotations,
			OwnerReferences: np.OwnerReferences,
		},
		Spec: np.Spec,
	}
	data, err := json.Marshal(intent)
	if err != nil {
		return nil, fmt.Errorf("encoding NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("encoding NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)
	}
	return client.ApplyConfigurationFromUnstructured(u), nil
}
