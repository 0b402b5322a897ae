package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// reservedNameWebhook is how the API server reports a refusal of the
// reserved-names webhook.
const reservedNameWebhook = `admission webhook "reserved-networkpolicy-names.moat.dev" denied the request`

// Issue 20, cases 9 and 10: names that someone else could take before moat
// or the namespace's owner does.
var _ = Describe("Names others could claim", func() {
	Describe("moat's policy names (case 9)", func() {
		const tenant = "e2e-name-squatter"

		It("refuses a tenant's NetworkPolicy under a name moat writes, before and after isolation; other names and admins are admitted", func() {
			aggregateClusterRole("edit")
			plain := createNamespace(nil)
			isolated := createIsolatedNamespace()
			waitForManagedPolicy(isolated.Name, policy.DefaultIngressPolicyName)
			for _, ns := range []string{plain.Name, isolated.Name} {
				bindClusterRole(ns, tenant, "edit")
				waitForRBAC(impersonatingClient(tenant), ns, "create")
			}
			c := impersonatingClient(tenant)

			By("in a namespace that is not isolated yet: the squat that kept it open once an admin isolated it")
			for _, name := range []string{policy.DefaultIngressPolicyName, policy.DefaultEgressPolicyName, policy.PolicyName("web"), "moat-future"} {
				squat := &networkingv1.NetworkPolicy{
					ObjectMeta: metav1.ObjectMeta{Namespace: plain.Name, Name: name},
					Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
				}
				err := c.Create(ctx, squat)
				Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden for %s, got %v", name, err)
				Expect(err).To(MatchError(SatisfyAll(HavePrefix(reservedNameWebhook),
					ContainSubstring(`may not create a NetworkPolicy named "`+name+`"`), ContainSubstring(`names starting with "moat-" are reserved`))))
				expectNotStored(squat)
			}
			By("generateName cannot get around it")
			generated := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: plain.Name, GenerateName: policy.DefaultIngressPolicyName},
				Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
			}
			Expect(c.Create(ctx, generated)).To(MatchError(HavePrefix(reservedNameWebhook)))

			By("in an isolated namespace, with a policy the tenant rule admits")
			sameNamespace := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: isolated.Name, Name: policy.DefaultEgressPolicyName},
				Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
				}}},
			}
			// The tenant webhook calls the same handler: either may answer.
			err := c.Create(ctx, sameNamespace)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
			Expect(err).To(MatchError(ContainSubstring(`names starting with "moat-" are reserved`)))
			expectNotStored(sameNamespace)

			By("other names are the tenant's")
			Expect(c.Create(ctx, &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: plain.Name, Name: "allow-moat-default-ingress"},
				Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
			})).To(Succeed())
			sameNamespace.Name = "same-namespace"
			Expect(c.Create(ctx, sameNamespace)).To(Succeed())

			By("an admin may (break glass)")
			Expect(k8sClient.Create(ctx, &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: plain.Name, Name: policy.DefaultIngressPolicyName},
				Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
			})).To(Succeed())
		})

		It("reports, in the response to the labelling, a policy moat does not manage that holds the default ingress policy's name", func() {
			ns := createNamespace(nil)
			// Stored before moat was installed, or by an admin.
			squat := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: policy.DefaultIngressPolicyName},
				Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
			}
			Expect(k8sClient.Create(ctx, squat)).To(Succeed())

			c, warnings := warningClient()
			warnings.take()
			labelled := ns.DeepCopy()
			labelled.Labels[moatv1alpha1.IsolationLabel] = "true"
			Expect(c.Update(ctx, labelled)).To(Succeed())
			Expect(warnings.take()).To(ConsistOf(SatisfyAll(
				HavePrefix("NetworkPolicy "+ns.Name+"/"+policy.DefaultIngressPolicyName+" exists and is not managed by moat"),
				ContainSubstring("the namespace is NOT isolated"),
				ContainSubstring("delete or rename it"),
			)))

			By("moat leaves it alone, and writes its own once it is gone")
			stored := &networkingv1.NetworkPolicy{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(squat), stored)).To(Succeed())
			Expect(stored.Labels).NotTo(HaveKey(moatv1alpha1.ManagedByLabel))
			Expect(stored.Spec.Ingress).To(Equal([]networkingv1.NetworkPolicyIngressRule{{}}))
			Expect(k8sClient.Delete(ctx, stored)).To(Succeed())
			Eventually(managedSpecs).WithArguments(ns.Name).Should(HaveKeyWithValue(policy.DefaultIngressPolicyName, specMatcher(defaultIngressSpec())))
		})
	})

	Describe("namespaces that do not exist (case 10)", func() {
		It("warns that whoever creates a namespace named by an allowlist peer is admitted, or receives the traffic", func() {
			ns := createIsolatedNamespace()
			c, warnings := warningClient()
			missing := "e2e-unclaimed-" + rand.String(6)
			warnings.take()
			Expect(c.Create(ctx, newAllowlist(ns.Name, "claimable", moatv1alpha1.NetworkAllowlistSpec{
				Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{alNamespace(missing)}}},
				Egress:  []moatv1alpha1.EgressRule{{To: []moatv1alpha1.Peer{alNamespace(missing), alService(missing, "db")}}},
			}))).To(Succeed())
			Expect(warnings.take()).To(ConsistOf(
				"spec.egress[0].to[0].namespace: namespace "+missing+" does not exist yet: whoever creates a namespace of that name receives this project's traffic through this rule; create it (or correct the name) before relying on the rule",
				"spec.egress[0].to[1].service: Service "+missing+"/db does not exist yet and neither does namespace "+missing+"; the peer allows nothing until both are created, and whoever creates namespace "+missing+" chooses the pods it selects: create the namespace (or correct the name)",
				"spec.ingress[0].from[0].namespace: namespace "+missing+" does not exist yet: whoever creates a namespace of that name is admitted into this project by this rule; create it (or correct the name) before relying on the rule",
			))
		})

		Context("--allowed-ingress-namespaces", Serial, func() {
			var missing []string

			BeforeEach(func() {
				missing = []string{"e2e-unclaimed-" + rand.String(6), "e2e-unclaimed-" + rand.String(6)}
				restartWithConfig(func(c *validation.Config) {
					c.Policy.AllowedIngressNamespaces = append([]string{allowedIngressNamespace}, missing...)
				})
			})

			It("counts the entries that do not exist in moat_allowed_ingress_namespaces_missing, and follows their creation", func() {
				ensureNamespace(allowedIngressNamespace)
				Eventually(gaugeValue).WithArguments("moat_allowed_ingress_namespaces_missing").Should(Equal(2.0))

				By("one of them is created")
				Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: missing[0]}})).To(Succeed())
				Eventually(gaugeValue).WithArguments("moat_allowed_ingress_namespaces_missing").WithTimeout(5 * time.Second).Should(Equal(1.0))

				By("and the other")
				Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: missing[1]}})).To(Succeed())
				Eventually(gaugeValue).WithArguments("moat_allowed_ingress_namespaces_missing").WithTimeout(5 * time.Second).Should(BeZero())
			})
		})
	})
})
