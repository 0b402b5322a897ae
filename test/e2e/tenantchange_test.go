package e2e

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/controller"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// Issue 20, cases 2, 3 and 7: whenever what moat admits shrinks, the
// NetworkPolicies that tenants wrote against the old model are checked
// again. A tenant cannot launder a policy through a temporary allowlist (the
// change that would strand it is refused); an admin's change, or a group
// move, is admitted and the stranded policies reported, by an Event on each
// policy in its own namespace (where its tenants see it) and the gauge.
var _ = Describe("tenant NetworkPolicies when what moat admits shrinks", func() {
	const tenant = "e2e-shrink-tenant"
	// beyond is what moat_tenant_network_policies_beyond_isolation counts
	// in a namespace (the gauge itself sums every namespace of the suite).
	beyond := func(namespace string) func() []string {
		return func() []string { return moatReconciler.TenantPoliciesBeyondIsolation(namespace) }
	}
	var (
		ns *corev1.Namespace
		c  client.Client
	)

	BeforeEach(func() {
		installAllowlistEditorRole()
		// edit aggregates view (which reads Events) and moat's allowlist
		// editor role.
		aggregateClusterRole("view")
		aggregateClusterRole("edit")
		ns = createIsolatedNamespace()
		waitForManagedPolicy(ns.Name, policy.DefaultIngressPolicyName)
		bindClusterRole(ns.Name, tenant, "edit")
		c = impersonatingClient(tenant)
		waitForRBAC(c, ns.Name, "create")
		waitForAllowlistRBAC(c, ns.Name, "delete")
	})

	// halves admits 0.0.0.0/0 in two halves, which no single peer of the
	// tenant rule would let through without an allowlist that admits it.
	halves := []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/1"}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "128.0.0.0/1"}},
	}
	temporary := func(partner string) moatv1alpha1.NetworkAllowlistSpec {
		return moatv1alpha1.NetworkAllowlistSpec{Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{
			alNamespace(partner), alIPBlock("0.0.0.0/0"),
		}}}}
	}
	// launder stores, as the tenant, the temporary allowlist and the
	// ingress policies that only it justifies.
	launder := func() (*moatv1alpha1.NetworkAllowlist, *networkingv1.NetworkPolicy, *networkingv1.NetworkPolicy) {
		GinkgoHelper()
		partner := ensureNamespace("e2e-launder-partner")
		al := newAllowlist(ns.Name, "temporary", temporary(partner.Name))
		Expect(c.Create(ctx, al)).To(Succeed())
		viaPartner := userNetworkPolicy(ns.Name, "via-partner", npNamespacePeer(partner.Name))
		everywhere := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "everywhere"},
			Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: halves}}},
		}
		Expect(c.Create(ctx, viaPartner)).To(Succeed())
		Expect(c.Create(ctx, everywhere)).To(Succeed())
		return al, viaPartner, everywhere
	}

	It("refuses a tenant's allowlist delete or narrowing that strands its ingress policies, naming them (case 2)", func() {
		al, viaPartner, everywhere := launder()

		By("deleting the allowlist: refused, naming both policies")
		err := c.Delete(ctx, al.DeepCopy())
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
		Expect(err).To(MatchError(SatisfyAll(
			ContainSubstring(`admission webhook "allowlist-deletes.moat.dev" denied the request`),
			ContainSubstring("NetworkPolicy via-partner would admit traffic beyond what moat admits"),
			ContainSubstring("NetworkPolicy everywhere would admit traffic beyond what moat admits"),
			ContainSubstring("spec.ingress[0].from[0].ipBlock"),
			ContainSubstring("narrow or delete that policy first"),
		)))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(al), &moatv1alpha1.NetworkAllowlist{})).To(Succeed())

		By("narrowing it to the partner only: refused, naming the policy that needs 0.0.0.0/0")
		stored := &moatv1alpha1.NetworkAllowlist{}
		Expect(c.Get(ctx, client.ObjectKeyFromObject(al), stored)).To(Succeed())
		stored.Spec.Ingress[0].From = stored.Spec.Ingress[0].From[:1]
		err = c.Update(ctx, stored)
		expectInvalid(err, "spec", "NetworkPolicy everywhere would admit traffic beyond what moat admits")
		Expect(err.Error()).NotTo(ContainSubstring("via-partner"))

		By("the tenant narrows the policies first: then the delete is admitted")
		Expect(c.Delete(ctx, everywhere)).To(Succeed())
		Expect(c.Delete(ctx, viaPartner)).To(Succeed())
		Expect(c.Delete(ctx, al.DeepCopy())).To(Succeed())
	})

	It("refuses a tenant's allowlist delete that strands its egress policy (case 2, egress)", func() {
		createAllowlist(ns.Name, "base", alEgress(alIPBlock("192.0.2.0/24")))
		temp := newAllowlist(ns.Name, "temporary-egress", alEgress(alIPBlock("0.0.0.0/0")))
		Expect(c.Create(ctx, temp)).To(Succeed())
		out := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "out-everywhere"},
			Spec: networkingv1.NetworkPolicySpec{
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{To: halves}},
			},
		}
		Expect(c.Create(ctx, out)).To(Succeed())

		err := c.Delete(ctx, temp.DeepCopy())
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
		Expect(err).To(MatchError(SatisfyAll(
			ContainSubstring("NetworkPolicy out-everywhere would admit traffic beyond what moat admits"),
			ContainSubstring("spec.egress[0].to[0].ipBlock"),
		)))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(temp), &moatv1alpha1.NetworkAllowlist{})).To(Succeed())
	})

	It("admits an admin's delete and reports the stranded policies on themselves, in their namespace; a fixed or deleted one stops counting (cases 2 and 7)", func() {
		al, viaPartner, everywhere := launder()

		By("an admin deletes the allowlist")
		Expect(k8sClient.Delete(ctx, al)).To(Succeed())

		By("both are checked again and counted")
		Eventually(beyond(ns.Name)).Should(Equal([]string{everywhere.Name, viaPartner.Name}))

		By("each policy has its Event, in the namespace, which the tenant can read")
		expectEvent(ns.Name, "NetworkPolicy", viaPartner.Name, controller.EventTenantPolicyBeyondIsolation)
		expectEvent(ns.Name, "NetworkPolicy", everywhere.Name, controller.EventTenantPolicyBeyondIsolation)
		Eventually(func() ([]string, error) {
			var events corev1.EventList
			if err := c.List(ctx, &events, client.InNamespace(ns.Name)); err != nil {
				return nil, err
			}
			var about []string
			for _, e := range events.Items {
				if e.Reason == controller.EventTenantPolicyBeyondIsolation && e.InvolvedObject.Kind == "NetworkPolicy" {
					about = append(about, e.InvolvedObject.Name)
				}
			}
			return about, nil
		}).Should(ContainElements(viaPartner.Name, everywhere.Name))

		By("fixing one (confined to the namespace) and deleting the other")
		fixed := &networkingv1.NetworkPolicy{}
		Expect(c.Get(ctx, client.ObjectKeyFromObject(viaPartner), fixed)).To(Succeed())
		fixed.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{npNamespacePeer(ns.Name)}
		Expect(c.Update(ctx, fixed)).To(Succeed())
		Eventually(beyond(ns.Name)).Should(Equal([]string{everywhere.Name}))
		Expect(c.Delete(ctx, everywhere)).To(Succeed())
		Eventually(beyond(ns.Name)).Should(BeEmpty())
	})

	It("reports a tenant policy that admits the old project group after an admin moves the namespace (case 3)", func() {
		moved := createNamespace(map[string]string{moatv1alpha1.IsolationLabel: "true", projectLabel: "e2e-move-a"})
		waitForManagedPolicy(moved.Name, policy.DefaultIngressPolicyName)
		bindClusterRole(moved.Name, tenant, "edit")
		waitForRBAC(c, moved.Name, "create")
		group := userNetworkPolicy(moved.Name, "old-group",
			networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{projectLabel: "e2e-move-a"}}})
		Expect(c.Create(ctx, group)).To(Succeed())

		By("an admin moves the namespace to another group")
		Eventually(func() error {
			stored := &corev1.Namespace{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(moved), stored); err != nil {
				return err
			}
			stored.Labels[projectLabel] = "e2e-move-b"
			return k8sClient.Update(ctx, stored)
		}).Should(Succeed())

		By("the policy is checked again, counted, and reported on itself")
		Eventually(beyond(moved.Name)).Should(Equal([]string{group.Name}))
		expectEvent(moved.Name, "NetworkPolicy", group.Name, controller.EventTenantPolicyBeyondIsolation)
	})

	Context("with --tenant-network-policies=warn", Serial, func() {
		BeforeEach(func() {
			restartWithConfig(func(c *validation.Config) { c.TenantNetworkPolicies = validation.TenantPoliciesWarn })
		})

		It("admits a tenant's delete that strands a policy, with a warning naming it", func() {
			partner := ensureNamespace("e2e-launder-partner")
			al := newAllowlist(ns.Name, "temporary", temporary(partner.Name))
			Expect(c.Create(ctx, al)).To(Succeed())
			Expect(c.Create(ctx, userNetworkPolicy(ns.Name, "via-partner", npNamespacePeer(partner.Name)))).To(Succeed())
			wc, rec := impersonatingWarningClient(tenant)
			rec.take()
			Expect(wc.Delete(ctx, al)).To(Succeed())
			Expect(rec.take()).To(ContainElement(ContainSubstring("NetworkPolicy via-partner would admit traffic beyond what moat admits")))
			expectEvent(ns.Name, "NetworkPolicy", "via-partner", controller.EventTenantPolicyBeyondIsolation)
		})
	})
})

// installAllowlistEditorRole creates moat's ClusterRole that the built-in
// admin and edit roles aggregate (manifests/rbac), unless it exists.
func installAllowlistEditorRole() {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "manifests", "rbac", "networkallowlist_editor_role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{}
	Expect(yaml.Unmarshal(data, role)).To(Succeed())
	if err := k8sClient.Create(ctx, role); err != nil {
		Expect(apierrors.IsAlreadyExists(err)).To(BeTrue(), "creating ClusterRole %s: %v", role.Name, err)
	}
}

// waitForAllowlistRBAC waits until RBAC lets c's user do verb on
// NetworkAllowlists in namespace.
func waitForAllowlistRBAC(c client.Client, namespace, verb string) {
	GinkgoHelper()
	Eventually(func() (bool, error) {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: verb, Group: moatv1alpha1.GroupVersion.Group, Resource: "networkallowlists",
			},
		}}
		if err := c.Create(ctx, review); err != nil {
			return false, err
		}
		return review.Status.Allowed, nil
	}).WithTimeout(10*time.Second).Should(BeTrue(), "RBAC lets the user %s networkallowlists in %s", verb, namespace)
}
