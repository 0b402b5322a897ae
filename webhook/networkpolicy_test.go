package webhook

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

var testTrust = Trust{ServiceAccount: "system:serviceaccount:moat-system:moat", AdminGroups: []string{"system:masters"}}

func requestContext(op admissionv1.Operation, user authenticationv1.UserInfo) context.Context {
	return admission.NewContextWithRequest(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op,
		UserInfo:  user,
	}})
}

func networkPolicy(managed bool) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "moat-default-ingress"},
		Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}},
		},
	}
	if managed {
		np.Labels = policy.ManagedLabels()
	}
	return np
}

func tamperDenied(user, verb string) error {
	return apierrors.NewForbidden(networkingv1.SchemeGroupVersion.WithResource("networkpolicies").GroupResource(), "moat-default-ingress",
		fmt.Errorf("user %q may not %s a NetworkPolicy labelled app.kubernetes.io/managed-by=moat: moat manages it and would put it back; "+
			"change the NetworkAllowlists or the moat.dev/isolated label of namespace demo-project-1 instead "+
			"(only moat itself, the namespace controller and the garbage collector, and members of system:masters may change managed policies)", user, verb))
}

func reservedDenied(user, name string) error {
	return apierrors.NewForbidden(networkingv1.SchemeGroupVersion.WithResource("networkpolicies").GroupResource(), name,
		fmt.Errorf("user %q may not create a NetworkPolicy named %q: names starting with \"moat-\" are reserved for the policies moat writes "+
			"(a policy of that name that moat does not manage would keep moat from isolating namespace demo-project-1); choose another name", user, name))
}

func named(np *networkingv1.NetworkPolicy, name string) *networkingv1.NetworkPolicy {
	np.Name = name
	return np
}

func TestNetworkPolicyTamperGuard(t *testing.T) {
	v := &NetworkPolicyValidator{Trust: testTrust}
	tenant := authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}
	moat := authenticationv1.UserInfo{Username: testTrust.ServiceAccount}
	admin := authenticationv1.UserInfo{Username: "root", Groups: []string{"system:masters"}}

	changed := func(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
		np = np.DeepCopy()
		np.Spec.Ingress = nil
		return np
	}
	tests := []struct {
		name string
		run  func(ctx context.Context) error
		user authenticationv1.UserInfo
		op   admissionv1.Operation
		want error
	}{
		{"tenant deletes a managed policy", func(ctx context.Context) error {
			_, err := v.ValidateDelete(ctx, networkPolicy(true))
			return err
		}, tenant, admissionv1.Delete, tamperDenied("alice", "delete")},
		{"tenant changes a managed policy", func(ctx context.Context) error {
			_, err := v.ValidateUpdate(ctx, networkPolicy(true), changed(networkPolicy(true)))
			return err
		}, tenant, admissionv1.Update, tamperDenied("alice", "update")},
		{"tenant removes the managed-by label", func(ctx context.Context) error {
			_, err := v.ValidateUpdate(ctx, networkPolicy(true), networkPolicy(false))
			return err
		}, tenant, admissionv1.Update, tamperDenied("alice", "update")},
		{"tenant adds the managed-by label to their policy", func(ctx context.Context) error {
			_, err := v.ValidateUpdate(ctx, networkPolicy(false), networkPolicy(true))
			return err
		}, tenant, admissionv1.Update, tamperDenied("alice", "update")},
		{"tenant forges a managed policy", func(ctx context.Context) error {
			_, err := v.ValidateCreate(ctx, networkPolicy(true))
			return err
		}, tenant, admissionv1.Create, tamperDenied("alice", "create")},
		{"tenant squats the name of the default ingress policy", func(ctx context.Context) error {
			_, err := v.ValidateCreate(ctx, networkPolicy(false))
			return err
		}, tenant, admissionv1.Create, reservedDenied("alice", "moat-default-ingress")},
		{"tenant squats the name of an allowlist's policy", func(ctx context.Context) error {
			_, err := v.ValidateCreate(ctx, named(networkPolicy(false), "moat-allowlist-web"))
			return err
		}, tenant, admissionv1.Create, reservedDenied("alice", "moat-allowlist-web")},
		{"tenant creates a policy under another name", func(ctx context.Context) error {
			_, err := v.ValidateCreate(ctx, named(networkPolicy(false), "allow-moat-default-ingress"))
			return err
		}, tenant, admissionv1.Create, nil},
		{"an admin creates a policy under a reserved name", func(ctx context.Context) error {
			_, err := v.ValidateCreate(ctx, networkPolicy(false))
			return err
		}, admin, admissionv1.Create, nil},
		{"tenant deletes their own policy", func(ctx context.Context) error {
			_, err := v.ValidateDelete(ctx, networkPolicy(false))
			return err
		}, tenant, admissionv1.Delete, nil},
		{"tenant changes their own policy", func(ctx context.Context) error {
			_, err := v.ValidateUpdate(ctx, networkPolicy(false), changed(networkPolicy(false)))
			return err
		}, tenant, admissionv1.Update, nil},
		{"moat changes a managed policy", func(ctx context.Context) error {
			_, err := v.ValidateUpdate(ctx, networkPolicy(true), changed(networkPolicy(true)))
			return err
		}, moat, admissionv1.Update, nil},
		{"an admin deletes a managed policy", func(ctx context.Context) error {
			_, err := v.ValidateDelete(ctx, networkPolicy(true))
			return err
		}, admin, admissionv1.Delete, nil},
		{"the namespace controller deletes a managed policy", func(ctx context.Context) error {
			_, err := v.ValidateDelete(ctx, networkPolicy(true))
			return err
		}, authenticationv1.UserInfo{Username: NamespaceControllerUser}, admissionv1.Delete, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(requestContext(tt.op, tt.user))
			if diff := cmp.Diff(tt.want, err); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNetworkPolicyChecks(t *testing.T) {
	sctp := named(networkPolicy(false), "sctp")
	sctp.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(9000))}}
	ctx := requestContext(admissionv1.Create, authenticationv1.UserInfo{Username: "alice"})

	wantErrs, _ := validation.ValidateNetworkPolicy(sctp, validation.Config{})
	if len(wantErrs) != 1 || wantErrs[0].Field != "spec.ingress[0].ports[0].protocol" {
		t.Fatalf("validation.ValidateNetworkPolicy = %v, want one error on the protocol", wantErrs)
	}
	off := &NetworkPolicyValidator{Trust: testTrust}
	_, err := off.ValidateCreate(ctx, sctp)
	want := apierrors.NewInvalid(networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy").GroupKind(), sctp.Name, field.ErrorList(wantErrs))
	if diff := cmp.Diff(error(want), err); diff != "" {
		t.Errorf("SCTP off: error (-want +got):\n%s", diff)
	}

	on := &NetworkPolicyValidator{Trust: testTrust, Config: validation.Config{SCTPEnabled: true}}
	if _, err := on.ValidateCreate(ctx, sctp); err != nil {
		t.Errorf("SCTP on: error %v, want none", err)
	}

	// An update that leaves the spec alone is not checked again.
	relabelled := sctp.DeepCopy()
	relabelled.Labels = map[string]string{"team": "a"}
	if _, err := off.ValidateUpdate(requestContext(admissionv1.Update, authenticationv1.UserInfo{Username: "alice"}), sctp, relabelled); err != nil {
		t.Errorf("metadata-only update: error %v, want none", err)
	}
}

// moat's own writes are not refused by the checks meant for user policies:
// an egress Service peer without ports translates to every target port of
// the Service, an SCTP one included, even while SCTP is off.
func TestNetworkPolicyChecksSkipMoatsOwnWrites(t *testing.T) {
	withSCTP := func(managed bool) *networkingv1.NetworkPolicy {
		np := networkPolicy(managed)
		np.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(9000))}}
		return np
	}
	v := &NetworkPolicyValidator{Trust: testTrust}
	moat := authenticationv1.UserInfo{Username: testTrust.ServiceAccount}
	admin := authenticationv1.UserInfo{Username: "root", Groups: []string{"system:masters"}}
	invalid := func(np *networkingv1.NetworkPolicy) error {
		errs, _ := validation.ValidateNetworkPolicy(np, validation.Config{})
		return apierrors.NewInvalid(networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy").GroupKind(), np.Name, errs)
	}
	tests := []struct {
		name string
		user authenticationv1.UserInfo
		op   admissionv1.Operation
		run  func(ctx context.Context) error
		want error
	}{
		{"moat creates a managed policy", moat, admissionv1.Create, func(ctx context.Context) error {
			_, err := v.ValidateCreate(ctx, withSCTP(true))
			return err
		}, nil},
		{"moat updates a managed policy", moat, admissionv1.Update, func(ctx context.Context) error {
			_, err := v.ValidateUpdate(ctx, networkPolicy(true), withSCTP(true))
			return err
		}, nil},
		{"moat writing a policy it does not manage is still checked", moat, admissionv1.Create, func(ctx context.Context) error {
			_, err := v.ValidateCreate(ctx, withSCTP(false))
			return err
		}, invalid(withSCTP(false))},
		{"an admin changing a managed policy (moat puts it back)", admin, admissionv1.Update, func(ctx context.Context) error {
			_, err := v.ValidateUpdate(ctx, networkPolicy(true), withSCTP(true))
			return err
		}, nil},
		{"an admin removing the managed-by label is checked", admin, admissionv1.Update, func(ctx context.Context) error {
			_, err := v.ValidateUpdate(ctx, networkPolicy(true), withSCTP(false))
			return err
		}, invalid(withSCTP(false))},
		{"a tenant forging a managed policy is still denied", authenticationv1.UserInfo{Username: "alice"}, admissionv1.Create, func(ctx context.Context) error {
			_, err := v.ValidateCreate(ctx, withSCTP(true))
			return err
		}, tamperDenied("alice", "create")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(requestContext(tt.op, tt.user))
			if diff := cmp.Diff(tt.want, err); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
