package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/controller"
	"moat.dev/moat/manifest"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
	"moat.dev/moat/webhook"
)

// Names of the webhooks this file exercises, as the API server reports them.
const (
	tenantPolicyWebhook    = `admission webhook "tenant-networkpolicies.moat.dev" denied the request`
	protectedNamespaceHook = `admission webhook "protected-namespaces.moat.dev" denied the request`
)

// refusedWrites returns moat_webhook_admission_writes_refused_total by reason.
func refusedWrites() map[string]float64 {
	GinkgoHelper()
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "moat_webhook_admission_writes_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	Expect(out).NotTo(BeEmpty(), "the metric is not registered")
	return out
}

// forgedReview is an AdmissionReview that claims the API server is asking
// whether old may be updated to carry moat.dev/isolated=true, sent by a
// cluster admin.
// Extra key-value pairs are further labels the forged object carries.
func forgedReview(old *corev1.Namespace, extra ...string) []byte {
	GinkgoHelper()
	labelled := old.DeepCopy()
	if labelled.Labels == nil {
		labelled.Labels = map[string]string{}
	}
	labelled.Labels[moatv1alpha1.IsolationLabel] = "true"
	for i := 0; i+1 < len(extra); i += 2 {
		labelled.Labels[extra[i]] = extra[i+1]
	}
	raw := func(ns *corev1.Namespace) runtime.RawExtension {
		ns = ns.DeepCopy()
		ns.APIVersion, ns.Kind = "v1", "Namespace"
		data, err := json.Marshal(ns)
		Expect(err).NotTo(HaveOccurred())
		return runtime.RawExtension{Raw: data}
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID(rand.String(16)),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Namespace"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "namespaces"},
			Name:      old.Name,
			Operation: admissionv1.Update,
			UserInfo:  authenticationv1.UserInfo{Username: "kubernetes-admin", Groups: []string{"system:masters", "system:authenticated"}},
			Object:    raw(labelled),
			OldObject: raw(old),
		},
	}
	data, err := json.Marshal(review)
	Expect(err).NotTo(HaveOccurred())
	return data
}

// postToWebhook posts body to moat's webhook server directly, as any pod
// that reaches the port could: over TLS (trusting the serving CA), without
// a client certificate. It returns the review's answer.
func postToWebhook(path string, body []byte) *admissionv1.AdmissionResponse {
	GinkgoHelper()
	opts := testEnv.WebhookInstallOptions
	pool := x509.NewCertPool()
	Expect(pool.AppendCertsFromPEM(opts.LocalServingCAData)).To(BeTrue())
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: 30 * time.Second}
	url := "https://" + net.JoinHostPort(opts.LocalServingHost, strconv.Itoa(opts.LocalServingPort)) + path
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	var answer admissionv1.AdmissionReview
	Expect(json.NewDecoder(resp.Body).Decode(&answer)).To(Succeed())
	Expect(answer.Response).NotTo(BeNil())
	return answer.Response
}

// impersonatingWarningClient is impersonatingClient with its warnings
// recorded.
func impersonatingWarningClient(user string, groups ...string) (client.Client, *warningRecorder) {
	GinkgoHelper()
	rec := &warningRecorder{}
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c.WarningHandler = nil
	c.WarningHandlerWithContext = rec
	cl, err := client.New(c, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return cl, rec
}

// ensureNamespace creates the named namespace unless it exists, and returns
// it as stored.
func ensureNamespace(name string) *corev1.Namespace {
	GinkgoHelper()
	err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	Expect(err == nil || apierrors.IsAlreadyExists(err)).To(BeTrue(), "creating namespace %s: %v", name, err)
	ns := &corev1.Namespace{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
	return ns
}

// ingressWrites counts moat's writes of the default ingress policy of
// namespace since writes was last reset.
func ingressWrites(namespace string) int {
	n := 0
	for _, w := range writes.Writes() {
		if w == "apply NetworkPolicy "+namespace+"/"+policy.DefaultIngressPolicyName {
			n++
		}
	}
	return n
}

var _ = Describe("Isolation that holds", func() {
	Describe("forged admission requests", Serial, func() {
		It("never make moat write into kube-system, nor for a made-up UID, and close a tenant's ingress at most once", func() {
			before := refusedWrites()
			writes.reset()

			By("(a) labelling kube-system, with its real UID and resourceVersion")
			kubeSystem := ensureNamespace("kube-system")
			// Other specs keep user policies there; moat adds none.
			inKubeSystem := listNetworkPolicies("kube-system")
			for range 10 {
				Expect(postToWebhook(webhook.MutateNamespacePath, forgedReview(kubeSystem)).Allowed).To(BeTrue())
				Expect(listNetworkPolicies("kube-system")).To(Equal(inKubeSystem))
			}
			Expect(listManagedNetworkPolicies("kube-system")).To(BeEmpty())

			By("(b) a tenant namespace with a made-up UID")
			tenant := createNamespace(nil)
			madeUp := tenant.DeepCopy()
			madeUp.UID = types.UID("00000000-0000-0000-0000-" + rand.String(12))
			for range 10 {
				Expect(postToWebhook(webhook.MutateNamespacePath, forgedReview(madeUp)).Allowed).To(BeTrue())
				Expect(listNetworkPolicies(tenant.Name)).To(BeEmpty())
			}

			By("(c) a tenant namespace with its real UID and resourceVersion, ten times")
			victim := createNamespace(nil)
			for i := range 10 {
				answer := postToWebhook(webhook.MutateNamespacePath, forgedReview(victim))
				Expect(answer.Allowed).To(BeTrue())
				if i > 0 {
					Expect(answer.Warnings).To(ContainElement(ContainSubstring("moat did not write the isolation NetworkPolicies of namespace " + victim.Name)))
				}
			}
			// One write, by the first request; the other nine wrote nothing.
			Expect(ingressWrites(victim.Name)).To(Equal(1))
			Expect(ingressWrites("kube-system")).To(BeZero())
			Expect(ingressWrites(tenant.Name)).To(BeZero())

			By("the controller reopening the tenant once the label is not stored (bounded by the admission grace)")
			Eventually(func() []networkingv1.NetworkPolicy { return listNetworkPolicies(victim.Name) }).
				WithTimeout(time.Minute).Should(BeEmpty())

			By("never closing it again while the label is absent")
			for range 10 {
				Expect(postToWebhook(webhook.MutateNamespacePath, forgedReview(victim)).Allowed).To(BeTrue())
				Expect(listNetworkPolicies(victim.Name)).To(BeEmpty())
			}
			Consistently(func() []networkingv1.NetworkPolicy { return listNetworkPolicies(victim.Name) }).
				WithTimeout(2 * time.Second).Should(BeEmpty())
			// The controller removes the policies up to a second before
			// the guard's grace ends (timestamps have one-second
			// resolution): by now the guard is in its back-off.
			backoffBefore := refusedWrites()[webhook.RefusedBackoff]
			Expect(postToWebhook(webhook.MutateNamespacePath, forgedReview(victim)).Allowed).To(BeTrue())
			Expect(refusedWrites()[webhook.RefusedBackoff]).To(Equal(backoffBefore + 1))
			Expect(listNetworkPolicies(victim.Name)).To(BeEmpty())
			Expect(ingressWrites(victim.Name)).To(Equal(1))

			after := refusedWrites()
			Expect(after[webhook.RefusedProtected] - before[webhook.RefusedProtected]).To(BeEquivalentTo(10))
			Expect(after[webhook.RefusedUIDMismatch] - before[webhook.RefusedUIDMismatch]).To(BeEquivalentTo(10))
			// The nine after the write, the ten after the reopening and
			// the last one above.
			Expect(after[webhook.RefusedAwaitingLabel] + after[webhook.RefusedBackoff] -
				before[webhook.RefusedAwaitingLabel] - before[webhook.RefusedBackoff]).To(BeEquivalentTo(20))

			By("still isolating the namespace when its owner really labels it")
			labelIsolated(victim)
			waitForManagedPolicy(victim.Name, policy.DefaultIngressPolicyName)
		})

		It("renders what it writes from the stored namespace, never from the request's other labels", func() {
			victim := createNamespace(nil)
			By("a forged review whose object also carries another project's group label")
			Expect(postToWebhook(webhook.MutateNamespacePath, forgedReview(victim, projectLabel, "e2e-forged-group")).Allowed).To(BeTrue())
			// The one write the guard admits renders the stored namespace
			// (no group): no peer selects the forged group.
			np := waitForManagedPolicy(victim.Name, policy.DefaultIngressPolicyName)
			for _, rule := range np.Spec.Ingress {
				for _, peer := range rule.From {
					if peer.NamespaceSelector != nil {
						Expect(peer.NamespaceSelector.MatchLabels).NotTo(HaveKey(projectLabel), "a peer admits the forged group")
					}
				}
			}
			Expect(listManagedNetworkPolicies(victim.Name)).To(HaveLen(1))

			// The label is never stored: the controller removes the
			// policy once the admission grace ends. Waiting for it keeps
			// that delete out of the specs that count writes.
			Eventually(func() []networkingv1.NetworkPolicy { return listNetworkPolicies(victim.Name) }).
				WithTimeout(time.Minute).Should(BeEmpty())
		})
	})

	Describe("protected namespaces", func() {
		It("refuses to isolate kube-system, and moat render says why and renders nothing for it", func() {
			kubeSystem := ensureNamespace("kube-system")
			labelled := kubeSystem.DeepCopy()
			if labelled.Labels == nil {
				labelled.Labels = map[string]string{}
			}
			labelled.Labels[moatv1alpha1.IsolationLabel] = "true"
			err := k8sClient.Update(ctx, labelled)
			Expect(err).To(MatchError(HavePrefix(protectedNamespaceHook)))
			expectInvalid(err, "metadata.labels[moat.dev/isolated]", "namespace kube-system is protected")

			By("moat validate and moat render on the same manifest")
			dir := GinkgoT().TempDir()
			file := filepath.Join(dir, "kube-system.yaml")
			Expect(os.WriteFile(file, []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n  labels:\n    moat.dev/isolated: \"true\"\n"), 0o644)).To(Succeed())
			cfg := defaultWebhookValidation()
			x, findings, err := manifest.Check([]string{file}, nil, nil, cfg)
			Expect(err).NotTo(HaveOccurred())
			Expect(findings).To(ConsistOf(SatisfyAll(
				HaveField("Severity", manifest.SeverityError),
				HaveField("Field", "metadata.labels[moat.dev/isolated]"),
				HaveField("Message", ContainSubstring("namespace kube-system is protected")),
			)))
			out, renderFindings, err := manifest.Render(x, controllerPolicyConfig)
			Expect(err).NotTo(HaveOccurred())
			Expect(out.Policies).To(BeEmpty())
			Expect(renderFindings).To(ConsistOf(HaveField("Message", ContainSubstring(`namespace "kube-system" is protected`))))

			Consistently(func() []networkingv1.NetworkPolicy { return listManagedNetworkPolicies("kube-system") }).
				WithTimeout(time.Second).Should(BeEmpty())
		})
	})

	Describe("tenant NetworkPolicies in an isolated namespace", func() {
		const tenant = "e2e-isolated-tenant"
		var ns *corev1.Namespace

		BeforeEach(func() {
			aggregateClusterRole("edit")
			ns = createIsolatedNamespace()
			waitForManagedPolicy(ns.Name, policy.DefaultIngressPolicyName)
			bindClusterRole(ns.Name, tenant, "edit")
			waitForRBAC(impersonatingClient(tenant), ns.Name, "create")
		})

		everyNamespace := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}
		everywhere := networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}
		openIngress := func(namespace string) *networkingv1.NetworkPolicy {
			return &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "open-" + rand.String(5)},
				Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
			}
		}
		const fix = "declare the peer in a NetworkAllowlist"

		DescribeTable("refuses a tenant's policy that opens the namespace, naming the peer",
			func(np func(namespace string) *networkingv1.NetworkPolicy, fieldPath string) {
				policy := np(ns.Name)
				err := impersonatingClient(tenant).Create(ctx, policy)
				Expect(err).To(MatchError(Or(HavePrefix(tenantPolicyWebhook), HavePrefix(networkPolicyWebhook))))
				expectInvalid(err, fieldPath, fix)
				expectNotStored(policy)
			},
			Entry("ingress: [{}]", openIngress, "spec.ingress[0].from"),
			Entry("from: [{namespaceSelector: {}}]", func(namespace string) *networkingv1.NetworkPolicy {
				return userNetworkPolicy(namespace, "every-namespace", everyNamespace)
			}, "spec.ingress[0].from[0].namespaceSelector"),
			Entry("from: [{ipBlock: {cidr: 0.0.0.0/0}}]", func(namespace string) *networkingv1.NetworkPolicy {
				return userNetworkPolicy(namespace, "everywhere", everywhere)
			}, "spec.ingress[0].from[0].ipBlock"),
		)

		It("refuses egress: [{}] once moat restricts the namespace's egress, and admits it before", func() {
			openEgress := func(name string) *networkingv1.NetworkPolicy {
				return &networkingv1.NetworkPolicy{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name},
					Spec: networkingv1.NetworkPolicySpec{
						PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
						Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
					},
				}
			}
			Expect(impersonatingClient(tenant).Create(ctx, openEgress("egress-open-before"))).To(Succeed())

			createAllowlist(ns.Name, "egress", alEgress(alIPBlock("192.0.2.0/24")))
			err := impersonatingClient(tenant).Create(ctx, openEgress("egress-open-after"))
			Expect(err).To(MatchError(HavePrefix(tenantPolicyWebhook)))
			expectInvalid(err, "spec.egress[0].to", fix)

			By("admitting egress to what the allowlist declares")
			declared := openEgress("egress-declared")
			declared.Spec.Egress[0].To = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.128/25"}}}
			Expect(impersonatingClient(tenant).Create(ctx, declared)).To(Succeed())
		})

		It("admits a tenant's policy confined to the namespace, and an admin's that opens it", func() {
			confined := userNetworkPolicy(ns.Name, "confined", networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}})
			confined.Spec.Ingress[0].From = append(confined.Spec.Ingress[0].From, npNamespacePeer(ns.Name), npNamespacePeer(allowedIngressNamespace))
			Expect(impersonatingClient(tenant).Create(ctx, confined)).To(Succeed())

			By("a member of an --admin-groups group that only the handler knows")
			bindClusterRole(ns.Name, "e2e-network-admin", "edit")
			admin := impersonatingClient("e2e-network-admin", extraAdminGroup)
			waitForRBAC(admin, ns.Name, "create")
			Expect(admin.Create(ctx, openIngress(ns.Name))).To(Succeed())
			By("a member of system:masters")
			Expect(k8sClient.Create(ctx, userNetworkPolicy(ns.Name, "admin-everywhere", everywhere))).To(Succeed())
		})

		It("admits what an allowlist of the namespace declares", func() {
			createAllowlist(ns.Name, "from-monitoring", alIngress(alNamespace("e2e-partner")))
			Expect(impersonatingClient(tenant).Create(ctx, userNetworkPolicy(ns.Name, "partner", npNamespacePeer("e2e-partner")))).To(Succeed())
		})

		It("reports, and keeps, a policy that was stored before the namespace was isolated", func() {
			plain := createNamespace(nil)
			before := openIngress(plain.Name)
			Expect(k8sClient.Create(ctx, before)).To(Succeed())
			reported := gaugeValue("moat_tenant_network_policies_beyond_isolation")
			labelIsolated(plain)
			expectEvent(plain.Name, "NetworkPolicy", before.Name, controller.EventTenantPolicyBeyondIsolation)
			Eventually(func() float64 { return gaugeValue("moat_tenant_network_policies_beyond_isolation") }).Should(BeNumerically(">", reported))
			Consistently(func() error {
				return k8sClient.Get(ctx, client.ObjectKeyFromObject(before), &networkingv1.NetworkPolicy{})
			}).
				WithTimeout(2 * time.Second).Should(Succeed())
		})

		It("lets a tenant change a policy stored before isolation elsewhere, with a warning, but not open it further", func() {
			plain := createNamespace(nil)
			bindClusterRole(plain.Name, tenant, "edit")
			c, rec := impersonatingWarningClient(tenant)
			waitForRBAC(c, plain.Name, "update")
			stored := userNetworkPolicy(plain.Name, "everywhere", everywhere)
			Expect(c.Create(ctx, stored)).To(Succeed())
			labelIsolated(plain)

			By("changing its pod selector only: admitted, the old peer reported")
			stored.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
			rec.take()
			Expect(c.Update(ctx, stored)).To(Succeed())
			Expect(rec.take()).To(ContainElement(ContainSubstring("spec.ingress[0].from[0].ipBlock: admits ingress from 0.0.0.0/0")))

			By("adding a peer that opens it further: refused")
			stored.Spec.Ingress[0].From = append(stored.Spec.Ingress[0].From, everyNamespace)
			err := c.Update(ctx, stored)
			expectInvalid(err, "spec.ingress[0].from[1].namespaceSelector", fix)
		})

		Context("with --tenant-network-policies=warn", Serial, func() {
			BeforeEach(func() {
				restartWithConfig(func(c *validation.Config) { c.TenantNetworkPolicies = validation.TenantPoliciesWarn })
			})

			It("admits the opening policy with a warning that names the peer", func() {
				c, rec := impersonatingWarningClient(tenant)
				Expect(c.Create(ctx, userNetworkPolicy(ns.Name, "everywhere", everywhere))).To(Succeed())
				Expect(rec.take()).To(ContainElement(SatisfyAll(ContainSubstring("spec.ingress[0].from[0].ipBlock: admits ingress from 0.0.0.0/0"), ContainSubstring(fix))))
			})
		})

		Context("while moat is stopped", Serial, func() {
			BeforeEach(func() {
				stopManager()
				DeferCleanup(startManager)
			})

			It("still refuses the tenant's opening policy in the isolated namespace, and nothing else waits on moat", func() {
				err := impersonatingClient(tenant).Create(ctx, openIngress(ns.Name))
				Expect(err).To(MatchError(ContainSubstring(`failed calling webhook "tenant-networkpolicies.moat.dev"`)))

				plain := createNamespace(nil)
				bindClusterRole(plain.Name, tenant, "edit")
				waitForRBAC(impersonatingClient(tenant), plain.Name, "create")
				Expect(impersonatingClient(tenant).Create(ctx, openIngress(plain.Name))).To(Succeed())
				Expect(impersonatingClient(tenant).Create(ctx, userNetworkPolicy(plain.Name, "everywhere", everywhere))).To(Succeed())
			})
		})
	})

	Describe("bounded lookups", Serial, func() {
		It("reads each distinct Service at most once per source for a 64x64 allowlist", func() {
			ns := createNamespace(nil)
			var rules []moatv1alpha1.EgressRule
			for range 64 {
				var peers []moatv1alpha1.Peer
				for j := range 64 {
					// Missing Services: every peer warns, so the answer
					// is checked again against the API server.
					peers = append(peers, alService("", fmt.Sprintf("svc-%d", j)))
				}
				rules = append(rules, moatv1alpha1.EgressRule{To: peers})
			}
			c, rec := warningClient()
			webhookReads.reset()
			Expect(c.Create(ctx, newAllowlist(ns.Name, "wide", moatv1alpha1.NetworkAllowlistSpec{Egress: rules}))).To(Succeed())
			Expect(rec.take()).NotTo(BeEmpty())

			reads := webhookReads.Counts()
			services := map[string]int{}
			for key, n := range reads {
				Expect(n).To(Equal(1), "%s read %d times in one admission", key, n)
				if strings.Contains(key, " get Service ") {
					services[key]++
				}
			}
			// Each of the 64 Services once from the cache and once, for
			// the live re-check of lookup findings, from the API server.
			Expect(services).To(HaveLen(128))
			Expect(reads).To(HaveKey("api get Service " + ns.Name + "/svc-63"))
		})

		It("never reads the API server for warnings that need no lookup", func() {
			ns := createNamespace(nil)
			c, rec := warningClient()
			webhookReads.reset()
			Expect(c.Create(ctx, newAllowlist(ns.Name, "everywhere", alEgress(alIPBlock("0.0.0.0/0"))))).To(Succeed())
			Expect(rec.take()).To(ContainElement(ContainSubstring("0.0.0.0/0")))
			for key := range webhookReads.Counts() {
				Expect(key).NotTo(HavePrefix("api "), "a lookup-free warning was checked again against the API server")
			}
		})
	})
})
