package e2e

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The suite's own promises to the specs: users authenticate by client
// certificate and RBAC decides what they may do, as in a real cluster.
var _ = Describe("The test control plane", func() {
	It("authenticates users by client certificate and authorizes them with RBAC only", func() {
		ns := createNamespace(nil).Name
		other := createNamespace(nil).Name
		user := "tenant-of-" + ns
		tenant := userClient(user, "tenants")
		policyIn := func(namespace string) *networkingv1.NetworkPolicy {
			return &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "user-policy"},
				Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
			}
		}
		forbidden := func(namespace string) string {
			return fmt.Sprintf(`networkpolicies.networking.k8s.io is forbidden: User %q cannot create resource "networkpolicies" in API group "networking.k8s.io" in the namespace %q`, user, namespace)
		}

		err := tenant.Create(ctx, policyIn(ns))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		Expect(err).To(MatchError(forbidden(ns)))

		// A role of the test's own: the built-in edit is empty until
		// aggregated (envtest runs no kube-controller-manager; see
		// aggregateClusterRole).
		writer := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-networkpolicy-writer-"},
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{networkingv1.GroupName},
				Resources: []string{"networkpolicies"},
				Verbs:     []string{"create"},
			}},
		}
		Expect(k8sClient.Create(ctx, writer)).To(Succeed())
		bindClusterRole(ns, user, writer.Name)
		// The RBAC authorizer sees new bindings through an informer.
		Eventually(func() error { return tenant.Create(ctx, policyIn(ns)) }).WithTimeout(10 * time.Second).Should(Succeed())

		err = tenant.Create(ctx, policyIn(other))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "edit in %s must not reach %s: got %v", ns, other, err)
		Expect(err).To(MatchError(forbidden(other)))
	})
})
