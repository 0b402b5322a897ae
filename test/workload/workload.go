// Package workload holds the objects and AdmissionReview requests that moat's
// benchmarks, robustness tests and fuzz seeds send: a NetworkAllowlist with
// ten egress rules to ten Services (the issue-7 admission case), the Services
// it names, AdmissionReview v1 bodies, and the project (Service + allowlist)
// of the scale and fault scenarios with the policies moat must write for it.
package workload

import (
	"encoding/json"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// Rules is the number of egress rules (and Services) of TenRuleAllowlist.
const Rules = 10

// ServiceName is the name of the i-th Service that TenRuleAllowlist names.
func ServiceName(i int) string { return fmt.Sprintf("backend-%d", i) }

// Services returns the Rules Services in namespace that TenRuleAllowlist
// names: each selects its pods and serves port 80 (named http) on 8080.
func Services(namespace string) []*corev1.Service {
	out := make([]*corev1.Service, 0, Rules)
	for i := range Rules {
		out = append(out, &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: ServiceName(i)},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": ServiceName(i)},
				Ports: []corev1.ServicePort{{
					Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080),
				}},
			},
		})
	}
	return out
}

// TenRuleAllowlist returns an allowlist in namespace with Rules egress rules,
// the i-th to Service ServiceName(i) in serviceNamespace on port 80. Every
// rule passes validation when the Services exist: no error, no warning.
func TenRuleAllowlist(namespace, name, serviceNamespace string) *v1alpha1.NetworkAllowlist {
	tcp := corev1.ProtocolTCP
	al := &v1alpha1.NetworkAllowlist{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkAllowlist"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
	}
	for i := range Rules {
		al.Spec.Egress = append(al.Spec.Egress, v1alpha1.EgressRule{
			To:    []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Namespace: serviceNamespace, Name: ServiceName(i)}}},
			Ports: []v1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(80))}},
		})
	}
	return al
}

// Review returns an AdmissionReview v1 request for obj (and oldObj on
// UPDATE and DELETE; nil otherwise), from user, as the API server would
// send it, with the given uid.
func Review(uid string, op admissionv1.Operation, gvr schema.GroupVersionResource, obj, oldObj runtime.Object, user authenticationv1.UserInfo) (*admissionv1.AdmissionReview, error) {
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID(uid),
		Resource:  metav1.GroupVersionResource(gvr),
		Operation: op,
		UserInfo:  user,
		DryRun:    ptr.To(false),
	}
	for _, o := range []runtime.Object{obj, oldObj} {
		if o == nil {
			continue
		}
		gvk := o.GetObjectKind().GroupVersionKind()
		req.Kind = metav1.GroupVersionKind(gvk)
		req.RequestKind = &req.Kind
		req.RequestResource = &req.Resource
		if m, ok := o.(metav1.Object); ok {
			req.Name, req.Namespace = m.GetName(), m.GetNamespace()
		}
	}
	var err error
	if obj != nil {
		if req.Object.Raw, err = json.Marshal(obj); err != nil {
			return nil, err
		}
	}
	if oldObj != nil {
		if req.OldObject.Raw, err = json.Marshal(oldObj); err != nil {
			return nil, err
		}
	}
	return &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Request:  req,
	}, nil
}

// AllowlistsResource is the resource of NetworkAllowlists.
var AllowlistsResource = v1alpha1.GroupVersion.WithResource("networkallowlists")

// TenRuleAllowlistReview returns the JSON body of a CREATE AdmissionReview
// for TenRuleAllowlist(namespace, "bench", serviceNamespace) by a tenant.
func TenRuleAllowlistReview(namespace, serviceNamespace string) ([]byte, error) {
	r, err := Review("00000000-0000-0000-0000-000000000001", admissionv1.Create, AllowlistsResource,
		TenRuleAllowlist(namespace, "bench", serviceNamespace), nil,
		authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}})
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// Project returns the Service "api" and the NetworkAllowlist "web" of one
// project namespace of the scale and fault benchmarks: the allowlist lets
// the project's pods reach the Service's pods on the Service's port 80.
func Project(namespace string) (*corev1.Service, *v1alpha1.NetworkAllowlist) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "api"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "api"},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	tcp := corev1.ProtocolTCP
	al := &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web"},
		Spec: v1alpha1.NetworkAllowlistSpec{
			Egress: []v1alpha1.EgressRule{{
				To:    []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Name: "api"}}},
				Ports: []v1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(80))}},
			}},
		},
	}
	return svc, al
}

// serviceMap answers policy.Services from a map.
type serviceMap map[types.NamespacedName]*corev1.Service

func (m serviceMap) Service(namespace, name string) (*corev1.Service, error) {
	return m[types.NamespacedName{Namespace: namespace, Name: name}], nil
}

// ExpectedPolicies renders the NetworkPolicies moat must own in Project
// namespace once it is isolated, with `moat serve`'s default policy
// configuration, with the API server's defaults applied (port protocol TCP)
// so that the specs compare equal to stored ones.
func ExpectedPolicies(namespace string) ([]networkingv1.NetworkPolicy, error) {
	svc, al := Project(namespace)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace, Labels: map[string]string{
		v1alpha1.IsolationLabel: "true", v1alpha1.NamespaceNameLabel: namespace}}}
	dns := policy.DefaultDNSService
	res, err := policy.Render(policy.Input{Namespace: ns, Allowlists: []*v1alpha1.NetworkAllowlist{al}},
		serviceMap{{Namespace: namespace, Name: "api"}: svc}, policy.Config{DNSService: &dns})
	if err != nil {
		return nil, err
	}
	for i := range res.Policies {
		DefaultSpec(&res.Policies[i].Spec)
	}
	return res.Policies, nil
}

// DefaultSpec applies the API server's defaults to a NetworkPolicy spec
// (protocol TCP on ports without one).
func DefaultSpec(spec *networkingv1.NetworkPolicySpec) {
	tcp := corev1.ProtocolTCP
	for i := range spec.Ingress {
		for j := range spec.Ingress[i].Ports {
			if spec.Ingress[i].Ports[j].Protocol == nil {
				spec.Ingress[i].Ports[j].Protocol = &tcp
			}
		}
	}
	for i := range spec.Egress {
		for j := range spec.Egress[i].Ports {
			if spec.Egress[i].Ports[j].Protocol == nil {
				spec.Egress[i].Ports[j].Protocol = &tcp
			}
		}
	}
}
