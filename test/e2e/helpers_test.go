package e2e

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
)

// createNamespace creates a Namespace with a unique name starting with
// "e2e-" and the given labels, and returns it as stored.
func createNamespace(labels map[string]string) *corev1.Namespace {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: labels}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns
}

// createIsolatedNamespace creates a Namespace labelled moat.dev/isolated=true.
func createIsolatedNamespace() *corev1.Namespace {
	GinkgoHelper()
	return createNamespace(map[string]string{moatv1alpha1.IsolationLabel: "true"})
}

// createService creates a ClusterIP Service in namespace with the given pod
// selector and ports, and returns it as stored.
func createService(namespace, name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	GinkgoHelper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}
	Expect(k8sClient.Create(ctx, svc)).To(Succeed())
	return svc
}

// newAllowlist returns an allowlist object (not yet created) in namespace.
func newAllowlist(namespace, name string, spec moatv1alpha1.NetworkAllowlistSpec) *moatv1alpha1.NetworkAllowlist {
	return &moatv1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       spec,
	}
}

// createAllowlist creates a NetworkAllowlist in namespace, expecting the API
// server (and moat's webhooks, when registered) to accept it, and returns it
// as stored.
func createAllowlist(namespace, name string, spec moatv1alpha1.NetworkAllowlistSpec) *moatv1alpha1.NetworkAllowlist {
	GinkgoHelper()
	al := newAllowlist(namespace, name, spec)
	Expect(k8sClient.Create(ctx, al)).To(Succeed())
	return al
}

// listNetworkPolicies returns the NetworkPolicies in namespace as stored.
func listNetworkPolicies(namespace string, opts ...client.ListOption) []networkingv1.NetworkPolicy {
	GinkgoHelper()
	var list networkingv1.NetworkPolicyList
	Expect(k8sClient.List(ctx, &list, append([]client.ListOption{client.InNamespace(namespace)}, opts...)...)).To(Succeed())
	return list.Items
}

// listManagedNetworkPolicies returns the NetworkPolicies in namespace that
// carry moat's managed-by label.
func listManagedNetworkPolicies(namespace string) []networkingv1.NetworkPolicy {
	GinkgoHelper()
	return listNetworkPolicies(namespace, client.MatchingLabels{moatv1alpha1.ManagedByLabel: moatv1alpha1.ManagedByValue})
}

// userClient returns an uncached client authenticated (by client certificate)
// as the given user and groups. The user has no rights until RBAC grants them,
// e.g. with bindClusterRole.
func userClient(name string, groups ...string) client.Client {
	GinkgoHelper()
	user, err := testEnv.AddUser(envtest.User{Name: name, Groups: groups}, &rest.Config{QPS: 1000, Burst: 2000})
	Expect(err).NotTo(HaveOccurred())
	c, err := client.New(user.Config(), client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// bindClusterRole grants the user a ClusterRole inside namespace through a
// RoleBinding. The built-in aggregated roles (admin, edit, view) have no rules
// in envtest, which runs no kube-controller-manager, until
// aggregateClusterRole fills them.
func bindClusterRole(namespace, user, clusterRole string) {
	GinkgoHelper()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, GenerateName: clusterRole + "-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	Expect(k8sClient.Create(ctx, rb)).To(Succeed())
}
