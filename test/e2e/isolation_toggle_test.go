package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// toggleRole is the ClusterRole of manifests/isolation-toggle.
const toggleRole = "moat-isolation-toggle"

// installManifests creates every object of the YAML files of a manifests/
// directory (not its kustomization.yaml) and deletes them when the current
// container ends.
func installManifests(dir string) {
	GinkgoHelper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "manifests", dir, "*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(file)
		Expect(err).NotTo(HaveOccurred())
		decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := decoder.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else {
				Expect(err).NotTo(HaveOccurred(), file)
			}
			if len(u.Object) == 0 {
				continue
			}
			Expect(k8sClient.Create(ctx, u)).To(Succeed(), "creating %s %s from %s", u.GetKind(), u.GetName(), file)
			DeferCleanup(func() {
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, u))).To(Succeed())
			})
		}
	}
}

// patchNamespace merge-patches the Namespace name as c's user, after mutate
// has changed a copy of it as stored, and returns the error.
func patchNamespace(c client.Client, name string, mutate func(*corev1.Namespace)) error {
	GinkgoHelper()
	stored := &corev1.Namespace{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, stored)).To(Succeed())
	changed := stored.DeepCopy()
	mutate(changed)
	return c.Patch(ctx, changed, client.MergeFrom(stored))
}

// getNamespace returns the stored Namespace name.
func getNamespace(name string) *corev1.Namespace {
	GinkgoHelper()
	ns := &corev1.Namespace{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
	return ns
}

// setLabel and friends are Namespace mutations.
func setLabel(key, value string) func(*corev1.Namespace) {
	return func(ns *corev1.Namespace) {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[key] = value
	}
}

func removeLabel(key string) func(*corev1.Namespace) {
	return func(ns *corev1.Namespace) { delete(ns.Labels, key) }
}

func setAnnotation(key, value string) func(*corev1.Namespace) {
	return func(ns *corev1.Namespace) {
		if ns.Annotations == nil {
			ns.Annotations = map[string]string{}
		}
		ns.Annotations[key] = value
	}
}

func both(a, b func(*corev1.Namespace)) func(*corev1.Namespace) {
	return func(ns *corev1.Namespace) { a(ns); b(ns) }
}

var _ = Describe("Self-service isolation (manifests/isolation-toggle)", Ordered, Serial, func() {
	const (
		podSecurityLabel = "pod-security.kubernetes.io/enforce"
		teamLabel        = "example.com/team"
		ownerAnnotation  = "example.com/owner"
	)
	var (
		projectA, projectB string
		projectAdmin       string
		admin              client.Client // the project admin, impersonated
	)

	// expectOnlyToggleRefused asserts that err is the policy's denial.
	expectOnlyToggleRefused := func(err error) {
		GinkgoHelper()
		Expect(err).To(HaveOccurred())
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
		Expect(err.Error()).To(ContainSubstring("ValidatingAdmissionPolicy 'moat-isolation-toggle'"))
		Expect(err.Error()).To(ContainSubstring("you may only set the moat.dev/isolated label of namespace " + projectA))
	}

	BeforeAll(func() {
		installManifests("isolation-toggle")
		a := createNamespace(map[string]string{podSecurityLabel: "baseline", teamLabel: "a"})
		b := createNamespace(nil)
		projectA, projectB = a.Name, b.Name
		Expect(patchNamespace(k8sClient, projectA, setAnnotation(ownerAnnotation, "alice"))).To(Succeed())

		projectAdmin = "e2e-project-admin-" + rand.String(5)
		bindClusterRole(projectA, projectAdmin, toggleRole)
		admin = impersonatingClient(projectAdmin)

		By("waiting until RBAC and the admission policy are in force")
		Eventually(func() (bool, error) {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "patch", Resource: "namespaces", Name: projectA, Namespace: projectA},
			}}
			if err := admin.Create(ctx, review); err != nil {
				return false, err
			}
			return review.Status.Allowed, nil
		}).Should(BeTrue())
		// The API server compiles the policy and learns of its binding
		// through informers: until then the change below is admitted, so
		// put it back each time.
		Eventually(func() error {
			err := patchNamespace(admin, projectA, setLabel(teamLabel, "b"))
			if err == nil {
				Expect(patchNamespace(k8sClient, projectA, setLabel(teamLabel, "a"))).To(Succeed())
			}
			return err
		}).Should(MatchError(ContainSubstring("moat-isolation-toggle")))
	})

	itTogglesAndNothingElse := func() {
		It("lets the project admin turn isolation of their project on and off", func() {
			Expect(patchNamespace(admin, projectA, setLabel(moatv1alpha1.IsolationLabel, "true"))).To(Succeed())
			Expect(getNamespace(projectA).Labels).To(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "true"))

			Expect(patchNamespace(admin, projectA, setLabel(moatv1alpha1.IsolationLabel, "false"))).To(Succeed())
			Expect(getNamespace(projectA).Labels).To(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "false"))

			Expect(patchNamespace(admin, projectA, setLabel(moatv1alpha1.IsolationLabel, "true"))).To(Succeed())
			Expect(patchNamespace(admin, projectA, removeLabel(moatv1alpha1.IsolationLabel))).To(Succeed())
			Expect(getNamespace(projectA).Labels).NotTo(HaveKey(moatv1alpha1.IsolationLabel))
		})

		DescribeTable("refuses every other change to the project's Namespace, and stores nothing of it",
			func(mutate func(*corev1.Namespace)) {
				before := getNamespace(projectA)
				expectOnlyToggleRefused(patchNamespace(admin, projectA, mutate))
				after := getNamespace(projectA)
				Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
			},
			Entry("changing another label", setLabel(teamLabel, "b")),
			Entry("adding a label", setLabel("example.com/new", "x")),
			Entry("removing the Pod Security label", removeLabel(podSecurityLabel)),
			Entry("weakening the Pod Security label", setLabel(podSecurityLabel, "privileged")),
			Entry("changing an annotation", setAnnotation(ownerAnnotation, "mallory")),
			Entry("adding an annotation", setAnnotation("example.com/new", "x")),
			Entry("adding a finalizer", func(ns *corev1.Namespace) { ns.Finalizers = append(ns.Finalizers, "example.com/keep") }),
			Entry("adding an owner reference", func(ns *corev1.Namespace) {
				ns.OwnerReferences = append(ns.OwnerReferences, metav1.OwnerReference{
					APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "00000000-0000-0000-0000-000000000001"})
			}),
			Entry("turning isolation on together with another label", both(setLabel(moatv1alpha1.IsolationLabel, "true"), setLabel(teamLabel, "b"))),
			Entry("setting the isolation label to a value other than true or false", setLabel(moatv1alpha1.IsolationLabel, "yes")),
		)

		It("gives the project admin nothing of another namespace", func() {
			err := admin.Get(ctx, client.ObjectKey{Name: projectB}, &corev1.Namespace{})
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
			err = patchNamespace(admin, projectB, setLabel(moatv1alpha1.IsolationLabel, "true"))
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
			Expect(err.Error()).NotTo(ContainSubstring("ValidatingAdmissionPolicy"), "refused by RBAC, before admission")
			Expect(getNamespace(projectB).Labels).NotTo(HaveKey(moatv1alpha1.IsolationLabel))

			err = admin.List(ctx, &corev1.NamespaceList{})
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
			err = admin.Delete(ctx, getNamespace(projectA))
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
		})
	}

	Context("while moat runs", func() {
		itTogglesAndNothingElse()

		It("isolates the project before the admin's request returns, and lifts isolation", func() {
			Expect(patchNamespace(admin, projectA, setLabel(moatv1alpha1.IsolationLabel, "true"))).To(Succeed())
			Expect(listManagedNetworkPolicies(projectA)).To(ContainElement(HaveField("ObjectMeta.Name", policy.DefaultIngressPolicyName)))
			Expect(patchNamespace(admin, projectA, removeLabel(moatv1alpha1.IsolationLabel))).To(Succeed())
			Eventually(func() []string {
				var names []string
				for _, np := range listManagedNetworkPolicies(projectA) {
					names = append(names, np.Name)
				}
				return names
			}).Should(BeEmpty())
		})
	})

	Context("while moat is stopped (the policy is evaluated by the API server)", func() {
		BeforeAll(func() {
			stopManager()
			DeferCleanup(startManager)
		})
		itTogglesAndNothingElse()
	})

	It("does not restrict identities that may update namespaces cluster-wide", func() {
		By("a cluster admin (system:masters)")
		Expect(patchNamespace(k8sClient, projectA, setLabel(teamLabel, "c"))).To(Succeed())

		By("a controller with a ClusterRoleBinding that lets it patch namespaces, as the garbage collector has")
		controllerUser := "e2e-gitops-" + rand.String(5)
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-namespace-patcher-"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: toggleRole},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: controllerUser}},
		}
		Expect(k8sClient.Create(ctx, crb)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, crb)).To(Succeed()) })
		controller := impersonatingClient(controllerUser)
		Eventually(func() error {
			return patchNamespace(controller, projectA, both(setLabel(teamLabel, "d"), setAnnotation(ownerAnnotation, "bob")))
		}).Should(Succeed())
		ns := getNamespace(projectA)
		Expect(ns.Labels).To(HaveKeyWithValue(teamLabel, "d"))
		Expect(ns.Annotations).To(HaveKeyWithValue(ownerAnnotation, "bob"))
	})
})
