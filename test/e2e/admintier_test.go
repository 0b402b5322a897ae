package e2e

import (
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// The admin-tier objects are checked against what policy renders for the
// stored namespace with the suite's configuration: the controller must
// write exactly that, and the API server (the module's CRDs, with their
// CEL rules) must accept it.
var _ = Describe("admin-tier enforcement", func() {
	// model is what moat computes for the stored namespace.
	model := func(name string, allowlists ...*moatv1alpha1.NetworkAllowlist) policy.Model {
		GinkgoHelper()
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
		m, err := policy.Compute(policy.Input{Namespace: ns, Allowlists: allowlists}, apiServices{}, webhookValidation.Policy)
		Expect(err).NotTo(HaveOccurred())
		return m
	}
	anp := func(name string) func() (*npav1alpha1.AdminNetworkPolicy, error) {
		return func() (*npav1alpha1.AdminNetworkPolicy, error) {
			obj := &npav1alpha1.AdminNetworkPolicy{}
			return obj, k8sClient.Get(ctx, client.ObjectKey{Name: name}, obj)
		}
	}
	specOf := func(get func() (*npav1alpha1.AdminNetworkPolicy, error)) func() (npav1alpha1.AdminNetworkPolicySpec, error) {
		return func() (npav1alpha1.AdminNetworkPolicySpec, error) {
			obj, err := get()
			if err != nil {
				return npav1alpha1.AdminNetworkPolicySpec{}, err
			}
			return obj.Spec, nil
		}
	}

	Context("with --enforcement=adminnetworkpolicy", func() {
		BeforeEach(func() {
			restartWithConfig(func(c *validation.Config) {
				c.Policy.Enforcement = policy.EnforcementAdminNetworkPolicy
				c.Policy.AdminTierPriority = policy.DefaultAdminTierPriority
				// The admin tier holds what the tenant check held.
				c.TenantNetworkPolicies = validation.TenantPoliciesOff
			})
		})

		It("writes each isolated namespace's AdminNetworkPolicy, puts it back, and deletes it when isolation is off", func() {
			ns := createIsolatedNamespace()
			name := policy.AdminTierName(ns.Name, 0)
			want := must(model(ns.Name).AdminNetworkPolicies(policy.DefaultAdminTierPriority))
			Expect(want).To(HaveLen(1))
			Eventually(specOf(anp(name))).Should(Equal(want[0].Spec))
			stored, err := anp(name)()
			Expect(err).NotTo(HaveOccurred())
			Expect(stored.Labels).To(Equal(policy.AdminTierLabels(ns.Name)))

			By("making no write when nothing changed")
			Consistently(func() (string, error) {
				obj, err := anp(name)()
				return obj.ResourceVersion, err
			}).WithTimeout(2 * time.Second).Should(Equal(stored.ResourceVersion))

			By("putting back a changed priority and a removed rule")
			changed := stored.DeepCopy()
			changed.Spec.Priority = 999
			changed.Spec.Ingress = changed.Spec.Ingress[:1]
			Expect(k8sClient.Update(ctx, changed)).To(Succeed())
			Eventually(specOf(anp(name))).Should(Equal(want[0].Spec))

			By("putting back a deleted object")
			Expect(k8sClient.Delete(ctx, stored)).To(Succeed())
			Eventually(specOf(anp(name))).Should(Equal(want[0].Spec))

			By("deleting it when isolation is turned off")
			patch := client.MergeFrom(ns.DeepCopy())
			ns.Labels[moatv1alpha1.IsolationLabel] = "false"
			Expect(k8sClient.Patch(ctx, ns, patch)).To(Succeed())
			Eventually(func() bool { _, err := anp(name)(); return apierrors.IsNotFound(err) }).Should(BeTrue())
		})

		It("restricts egress once an allowlist does, and deletes the objects of a deleted namespace", func() {
			ns := createIsolatedNamespace()
			tcp := corev1.ProtocolTCP
			// The named port: the standard channel's CRDs have no field that
			// matches a port by name, so moat passes its protocol whole (an
			// object naming it would be refused, its Deny with it).
			al := createAllowlist(ns.Name, "out", moatv1alpha1.NetworkAllowlistSpec{Egress: []moatv1alpha1.EgressRule{{
				To:    []moatv1alpha1.Peer{{IPBlock: &moatv1alpha1.IPBlock{CIDR: "203.0.113.0/24", Except: []string{"203.0.113.128/25"}}}},
				Ports: []moatv1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(443))}},
			}}, Ingress: []moatv1alpha1.IngressRule{{
				From:  []moatv1alpha1.Peer{{Namespace: allowedIngressNamespace}},
				Ports: []moatv1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromString("http"))}},
			}}})
			name := policy.AdminTierName(ns.Name, 0)
			want := must(model(ns.Name, al).AdminNetworkPolicies(policy.DefaultAdminTierPriority))
			Eventually(specOf(anp(name))).Should(Equal(want[0].Spec))
			last := want[0].Spec.Egress[len(want[0].Spec.Egress)-1]
			Expect(last.Action).To(Equal(npav1alpha1.AdminNetworkPolicyRuleActionDeny))

			By("deleting the namespace")
			Expect(k8sClient.Delete(ctx, ns)).To(Succeed())
			Eventually(func() bool { _, err := anp(name)(); return apierrors.IsNotFound(err) }).Should(BeTrue())
		})
		It("leaves an object of its name that it does not manage alone, tells, and writes its own once that is gone", func() {
			ns := createNamespace(nil)
			name := policy.AdminTierName(ns.Name, 0)
			squat := &npav1alpha1.AdminNetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       npav1alpha1.AdminNetworkPolicySpec{Priority: 500, Subject: npav1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"e2e": "nothing"}}}},
			}
			Expect(k8sClient.Create(ctx, squat)).To(Succeed())
			DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, squat))).To(Succeed()) })

			patch := client.MergeFrom(ns.DeepCopy())
			ns.Labels = map[string]string{moatv1alpha1.IsolationLabel: "true"}
			Expect(k8sClient.Patch(ctx, ns, patch)).To(Succeed())
			expectEvent(metav1.NamespaceDefault, "Namespace", ns.Name, "IsolationIncomplete")
			Consistently(func() (npav1alpha1.AdminNetworkPolicySpec, error) {
				obj, err := anp(name)()
				if err == nil && policy.IsManaged(obj) {
					return obj.Spec, errors.New("moat took the object over")
				}
				return obj.Spec, err
			}).WithTimeout(2 * time.Second).Should(Equal(squat.Spec))

			By("writing its own once the other object is gone")
			Expect(k8sClient.Delete(ctx, squat)).To(Succeed())
			want := must(model(ns.Name).AdminNetworkPolicies(policy.DefaultAdminTierPriority))
			Eventually(specOf(anp(name))).Should(Equal(want[0].Spec))
		})
	})

	Context("with the tamper guard of manifests/admin-tier", func() {
		BeforeEach(func() {
			restartWithConfig(func(c *validation.Config) {
				c.Policy.Enforcement = policy.EnforcementAdminNetworkPolicy
				c.Policy.AdminTierPriority = policy.DefaultAdminTierPriority
			})
			installManifests("admin-tier")
		})

		It("refuses a network admin's changes to moat's objects and moat's names, and nothing else", func() {
			user := "e2e-network-admin-" + rand.String(5)
			role := &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-anp-admin-"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{"policy.networking.k8s.io"},
					Resources: []string{"adminnetworkpolicies"}, Verbs: []string{"*"}}},
			}
			Expect(k8sClient.Create(ctx, role)).To(Succeed())
			DeferCleanup(func() { Expect(k8sClient.Delete(ctx, role)).To(Succeed()) })
			binding := &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-anp-admin-"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
			}
			Expect(k8sClient.Create(ctx, binding)).To(Succeed())
			DeferCleanup(func() { Expect(k8sClient.Delete(ctx, binding)).To(Succeed()) })
			netAdmin := impersonatingClient(user, "system:authenticated")

			ns := createIsolatedNamespace()
			name := policy.AdminTierName(ns.Name, 0)
			Eventually(func() error { _, err := anp(name)(); return err }).Should(Succeed())

			By("refusing a change and a delete of moat's object")
			// The API server learns of the policy and its binding through
			// informers: until then the change is admitted (and put back).
			Eventually(func() error {
				obj, err := anp(name)()
				if err != nil {
					return err
				}
				obj.Spec.Priority = 999
				return netAdmin.Update(ctx, obj)
			}).Should(MatchError(ContainSubstring("ValidatingAdmissionPolicy 'moat-admin-tier-guard'")))
			obj, err := anp(name)()
			Expect(err).NotTo(HaveOccurred())
			err = netAdmin.Delete(ctx, obj)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring("user " + user + " may not delete adminnetworkpolicies"))

			By("refusing a name reserved for moat, admitting any other")
			squat := &npav1alpha1.AdminNetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: policy.AdminTierName("not-yet-isolated", 0)},
				Spec:       npav1alpha1.AdminNetworkPolicySpec{Priority: 500, Subject: npav1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}},
			}
			err = netAdmin.Create(ctx, squat)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			own := squat.DeepCopy()
			own.Name = "e2e-team-" + rand.String(5)
			Expect(netAdmin.Create(ctx, own)).To(Succeed())
			Expect(netAdmin.Delete(ctx, own)).To(Succeed())
		})
	})

	Context("with --enforcement=clusternetworkpolicy", func() {
		BeforeEach(func() {
			restartWithConfig(func(c *validation.Config) {
				c.Policy.Enforcement = policy.EnforcementClusterNetworkPolicy
				c.Policy.AdminTierPriority = policy.DefaultAdminTierPriority
			})
		})

		It("writes ClusterNetworkPolicies of the Admin tier that the API server accepts", func() {
			ns := createIsolatedNamespace()
			tcp := corev1.ProtocolTCP
			al := createAllowlist(ns.Name, "mixed", moatv1alpha1.NetworkAllowlistSpec{
				Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{{Namespace: allowedIngressNamespace}},
					Ports: []moatv1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(8080)), EndPort: ptr.To[int32](8090)}, {Protocol: &tcp, Port: ptr.To(intstr.FromString("metrics"))}}}},
				Egress: []moatv1alpha1.EgressRule{{
					To:    []moatv1alpha1.Peer{{IPBlock: &moatv1alpha1.IPBlock{CIDR: "198.51.100.0/24", Except: []string{"198.51.100.7/32"}}}},
					Ports: []moatv1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromString("https"))}},
				}, {
					To: []moatv1alpha1.Peer{{Namespace: allowedIngressNamespace}},
				}},
			})
			want := must(model(ns.Name, al).ClusterNetworkPolicies(policy.DefaultAdminTierPriority))
			Expect(want).NotTo(BeEmpty())
			for _, w := range want {
				Eventually(func() (npav1beta1.ClusterNetworkPolicySpec, error) {
					obj := &npav1beta1.ClusterNetworkPolicy{}
					err := k8sClient.Get(ctx, client.ObjectKey{Name: w.Name}, obj)
					return obj.Spec, err
				}).Should(Equal(w.Spec), w.Name)
			}
		})
	})
})

func must[T any](v T, err error) T {
	GinkgoHelper()
	Expect(err).NotTo(HaveOccurred())
	return v
}

// apiServices looks Services up on the API server, for the specs'
// expectations.
type apiServices struct{}

func (apiServices) Service(namespace, name string) (*corev1.Service, error) {
	svc := &corev1.Service{}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, svc)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return svc, err
}
