package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// installIsolateNewWebhook creates the webhook configuration of
// manifests/isolate-new-namespaces, pointed at the suite's webhook server as
// envtest does for manifests/webhook, and deletes it when the container ends.
func installIsolateNewWebhook() {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "manifests", "isolate-new-namespaces", "mutating-webhook-configuration.yaml"))
	Expect(err).NotTo(HaveOccurred())
	config := &admissionregistrationv1.MutatingWebhookConfiguration{}
	Expect(yaml.UnmarshalStrict(data, config)).To(Succeed())
	opts := testEnv.WebhookInstallOptions
	for i := range config.Webhooks {
		cc := &config.Webhooks[i].ClientConfig
		Expect(cc.Service).NotTo(BeNil())
		url := fmt.Sprintf("https://%s%s", net.JoinHostPort(opts.LocalServingHost, strconv.Itoa(opts.LocalServingPort)), *cc.Service.Path)
		cc.Service, cc.URL, cc.CABundle = nil, &url, opts.LocalServingCAData
	}
	Expect(k8sClient.Create(ctx, config)).To(Succeed())
	DeferCleanup(func() { Expect(k8sClient.Delete(ctx, config)).To(Succeed()) })
}

var _ = Describe("Isolated by default (--isolate-new-namespaces)", Ordered, Serial, func() {
	matching := map[string]string{isolateNewLabel: "true"}

	BeforeAll(func() {
		// moat's own namespace, as this manager sees it: a fresh name, so
		// that the spec can create it.
		webhookSystemNamespace = "e2e-moat-home-" + rand.String(5)
		stopManager()
		startManager()
		DeferCleanup(func() {
			webhookSystemNamespace = "moat-system"
			stopManager()
			startManager()
		})
		installIsolateNewWebhook()
		By("waiting until the API server calls the webhook")
		Eventually(func() map[string]string {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-probe-", Labels: matching}}
			Expect(k8sClient.Create(ctx, ns, client.DryRunAll)).To(Succeed())
			return ns.Labels
		}).Should(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "true"))
	})

	It("stores a matching new namespace labelled isolated, with its policies within 1 s", func() {
		ns := createNamespace(matching)
		Expect(ns.Labels).To(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "true"))
		Expect(getNamespace(ns.Name).Labels).To(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "true"))
		Eventually(func() []networkingv1.NetworkPolicy { return listManagedNetworkPolicies(ns.Name) }).
			WithTimeout(time.Second).WithPolling(10 * time.Millisecond).
			Should(ContainElement(HaveField("ObjectMeta.Name", policy.DefaultIngressPolicyName)))
	})

	It("leaves a namespace that does not match untouched", func() {
		ns := createNamespace(map[string]string{isolateNewLabel: "false"})
		Expect(getNamespace(ns.Name).Labels).NotTo(HaveKey(moatv1alpha1.IsolationLabel))
		plain := createNamespace(nil)
		Expect(getNamespace(plain.Name).Labels).NotTo(HaveKey(moatv1alpha1.IsolationLabel))
		Consistently(func() []networkingv1.NetworkPolicy { return listNetworkPolicies(ns.Name) }).
			WithTimeout(2 * time.Second).Should(BeEmpty())
	})

	It("never isolates moat's own namespace", func() {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhookSystemNamespace, Labels: matching}}
		Expect(k8sClient.Create(ctx, ns)).To(Succeed())
		Expect(getNamespace(ns.Name).Labels).NotTo(HaveKey(moatv1alpha1.IsolationLabel))
		Consistently(func() []networkingv1.NetworkPolicy { return listNetworkPolicies(ns.Name) }).
			WithTimeout(2 * time.Second).Should(BeEmpty())
	})

	It("writes no policy for a dry-run create, which still shows the label", func() {
		name := "e2e-dry-" + rand.String(8)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: matching}}
		Expect(k8sClient.Create(ctx, ns, client.DryRunAll)).To(Succeed())
		Expect(ns.Labels).To(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "true"))
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})).NotTo(Succeed())
		Consistently(func() []networkingv1.NetworkPolicy { return listNetworkPolicies(name) }).
			WithTimeout(2 * time.Second).Should(BeEmpty())
	})

	It("lets only a cluster admin opt a new namespace out with the selector's labels", func() {
		optOut := map[string]string{isolateNewLabel: "true", notATenantLabel: "yes"}
		byAdmin := createNamespace(optOut)
		Expect(getNamespace(byAdmin.Name).Labels).NotTo(HaveKey(moatv1alpha1.IsolationLabel))

		c, rec := namespaceCreator()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: optOut}}
		Eventually(func() error { return c.Create(ctx, ns) }).Should(Succeed())
		Expect(getNamespace(ns.Name).Labels).To(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "true"))
		warnings := rec.take()
		Expect(warnings).To(ContainElement(ContainSubstring("only cluster admins may leave one out with labels")), "%q", warnings)
	})

	It("keeps an explicit opt-out by a cluster admin, and overrides one by anyone else with a warning", func() {
		optOut := map[string]string{isolateNewLabel: "true", moatv1alpha1.IsolationLabel: "false"}
		byAdmin := createNamespace(optOut)
		Expect(getNamespace(byAdmin.Name).Labels).To(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "false"))

		c, rec := namespaceCreator()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: optOut}}
		Eventually(func() error { return c.Create(ctx, ns) }).Should(Succeed())
		Expect(getNamespace(ns.Name).Labels).To(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "true"))
		Expect(rec.take()).To(ContainElement(ContainSubstring("only cluster admins may create one with moat.dev/isolated=false")))
	})
})

// namespaceCreator returns a client of a user who may create namespaces and
// nothing else, with its warnings recorded; its rights go when the spec ends.
func namespaceCreator() (client.Client, *warningRecorder) {
	GinkgoHelper()
	creator := "e2e-namespace-creator-" + rand.String(5)
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-namespace-creator-"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}}},
	}
	Expect(k8sClient.Create(ctx, role)).To(Succeed())
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-namespace-creator-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: creator}},
	}
	Expect(k8sClient.Create(ctx, crb)).To(Succeed())
	DeferCleanup(func() {
		Expect(k8sClient.Delete(ctx, crb)).To(Succeed())
		Expect(k8sClient.Delete(ctx, role)).To(Succeed())
	})

	rec := &warningRecorder{}
	userCfg := rest.CopyConfig(cfg)
	userCfg.Impersonate = rest.ImpersonationConfig{UserName: creator}
	userCfg.WarningHandler, userCfg.WarningHandlerWithContext = nil, rec
	c, err := client.New(userCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c, rec
}
