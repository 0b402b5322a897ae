package webhook

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
	"moat.dev/moat/validation"
)

// TestAllowlistChangesKeepTenantPolicies: in an isolated namespace, a
// tenant's allowlist delete or change that would leave a NetworkPolicy
// admitting more than moat does is refused under restrict, warned about
// under warn, and not checked under off or for trusted users.
func TestAllowlistChangesKeepTenantPolicies(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	const ns = "demo-project-1"
	partner := &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "partner"},
		Spec: v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{
			{Namespace: "demo-project-2"}, {IPBlock: &v1alpha1.IPBlock{CIDR: "192.0.2.0/24"}},
		}}}},
	}
	viaPartner := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "via-partner"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: "demo-project-2"}}},
		}}}},
	}
	egressAnywhere := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "egress-anywhere"},
		Spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
			{IPBlock: &networkingv1.IPBlock{CIDR: "198.51.100.0/24"}},
		}}}},
	}
	namespace := func(isolated bool) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{}}}
		if isolated {
			n.Labels[v1alpha1.IsolationLabel] = v1alpha1.IsolationOn
		}
		return n
	}
	var policyLists atomic.Int32
	validator := func(mode validation.TenantPolicyMode, isolated bool) *AllowlistValidator {
		policyLists.Store(0)
		c := fake.NewClientBuilder().WithScheme(scheme).
			WithObjects(namespace(isolated), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo-project-2"}}, partner.DeepCopy(), viaPartner.DeepCopy(), egressAnywhere.DeepCopy()).
			WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				if _, ok := list.(*networkingv1.NetworkPolicyList); ok {
					policyLists.Add(1)
				}
				return c.List(ctx, list, opts...)
			}}).Build()
		return &AllowlistValidator{Config: validation.Config{TenantNetworkPolicies: mode}, Cached: lookup.New(c), Live: lookup.New(c), Trust: testTrust}
	}
	tenant := authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}
	admin := authenticationv1.UserInfo{Username: "root", Groups: []string{"system:masters"}}
	const stranded = "NetworkPolicy via-partner would admit traffic beyond what moat admits once this change is made"

	t.Run("a tenant's delete, restrict: Forbidden, naming the policy", func(t *testing.T) {
		_, err := validator(validation.TenantPoliciesRestrict, true).ValidateDelete(requestContext(admissionv1.Delete, tenant), partner.DeepCopy())
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), stranded) || !strings.Contains(err.Error(), "metadata.name") {
			t.Errorf("err = %v, want Forbidden at metadata.name naming via-partner", err)
		}
	})
	t.Run("a tenant's narrowing, restrict: Invalid at spec", func(t *testing.T) {
		narrowed := partner.DeepCopy()
		narrowed.Spec.Ingress[0].From = narrowed.Spec.Ingress[0].From[1:]
		_, err := validator(validation.TenantPoliciesRestrict, true).ValidateUpdate(requestContext(admissionv1.Update, tenant), partner.DeepCopy(), narrowed)
		var status apierrors.APIStatus
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), stranded) {
			t.Fatalf("err = %v, want Invalid naming via-partner", err)
		}
		if ok := errors.As(err, &status); !ok || len(status.Status().Details.Causes) != 1 || status.Status().Details.Causes[0].Field != "spec" {
			t.Errorf("causes of %v, want one at spec", err)
		}
	})
	t.Run("a tenant's change that keeps the partner: admitted, no findings", func(t *testing.T) {
		kept := partner.DeepCopy()
		kept.Spec.Ingress[0].From = kept.Spec.Ingress[0].From[:1]
		warnings, err := validator(validation.TenantPoliciesRestrict, true).ValidateUpdate(requestContext(admissionv1.Update, tenant), partner.DeepCopy(), kept)
		if err != nil || len(warnings) != 0 {
			t.Errorf("warnings %v, err %v", warnings, err)
		}
	})
	t.Run("a tenant's delete, warn: admitted with a warning naming the policy", func(t *testing.T) {
		warnings, err := validator(validation.TenantPoliciesWarn, true).ValidateDelete(requestContext(admissionv1.Delete, tenant), partner.DeepCopy())
		if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], stranded) {
			t.Errorf("warnings %v, err %v", warnings, err)
		}
	})
	for _, tc := range []struct {
		name     string
		mode     validation.TenantPolicyMode
		isolated bool
		user     authenticationv1.UserInfo
	}{
		{"off", validation.TenantPoliciesOff, true, tenant},
		{"an admin", validation.TenantPoliciesRestrict, true, admin},
		{"a namespace that is not isolated", validation.TenantPoliciesRestrict, false, tenant},
	} {
		t.Run("a delete, "+tc.name+": admitted without looking at the policies", func(t *testing.T) {
			warnings, err := validator(tc.mode, tc.isolated).ValidateDelete(requestContext(admissionv1.Delete, tc.user), partner.DeepCopy())
			if err != nil || len(warnings) != 0 || policyLists.Load() != 0 {
				t.Errorf("warnings %v, err %v, NetworkPolicy lists %d", warnings, err, policyLists.Load())
			}
		})
	}
	t.Run("a tenant's first egress allowlist: refused when it strands an egress policy", func(t *testing.T) {
		egress := &v1alpha1.NetworkAllowlist{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "egress"},
			Spec: v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{{To: []v1alpha1.Peer{
				{IPBlock: &v1alpha1.IPBlock{CIDR: "203.0.113.0/24"}},
			}}}},
		}
		_, err := validator(validation.TenantPoliciesRestrict, true).ValidateCreate(requestContext(admissionv1.Create, tenant), egress)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "NetworkPolicy egress-anywhere would admit") || strings.Contains(err.Error(), "via-partner") {
			t.Errorf("err = %v, want Invalid naming egress-anywhere only", err)
		}
	})
	t.Run("a tenant's ingress allowlist: admitted without looking at the policies", func(t *testing.T) {
		more := partner.DeepCopy()
		more.Name = "more"
		warnings, err := validator(validation.TenantPoliciesRestrict, true).ValidateCreate(requestContext(admissionv1.Create, tenant), more)
		if err != nil || len(warnings) != 0 || policyLists.Load() != 0 {
			t.Errorf("warnings %v, err %v, NetworkPolicy lists %d", warnings, err, policyLists.Load())
		}
	})
}
