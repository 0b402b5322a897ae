package e2e

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// Names of moat's webhooks as the API server reports them in denials.
const (
	allowlistWebhook      = `admission webhook "networkallowlists.moat.dev" denied the request`
	networkPolicyWebhook  = `admission webhook "networkpolicies.moat.dev" denied the request`
	managedPolicyWebhook  = `admission webhook "managed-networkpolicies.moat.dev" denied the request`
	namespaceLabelWebhook = `admission webhook "namespaces.moat.dev" denied the request`
)

// warningRecorder collects the warnings (admission warnings among them) that
// the API server returns to one client.
type warningRecorder struct {
	mu    sync.Mutex
	texts []string
}

// HandleWarningHeaderWithContext implements rest.WarningHandlerWithContext.
func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, code int, _ string, text string) {
	if code != 299 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.texts = append(w.texts, text)
}

// take returns the warnings recorded since the last take.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	texts := w.texts
	w.texts = nil
	return texts
}

// warningClient returns an uncached admin client whose warnings are recorded.
func warningClient() (client.Client, *warningRecorder) {
	GinkgoHelper()
	rec := &warningRecorder{}
	c := rest.CopyConfig(cfg)
	c.WarningHandler = nil
	c.WarningHandlerWithContext = rec
	cl, err := client.New(c, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return cl, rec
}

// impersonatingClient returns an uncached client that acts as user (and
// groups), through the admin's right to impersonate.
func impersonatingClient(user string, groups ...string) client.Client {
	GinkgoHelper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	cl, err := client.New(c, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return cl
}

// expectInvalid asserts that err is the API server's Invalid error with a
// cause at exactly fieldPath whose message contains detail, and that the
// message names the field path.
func expectInvalid(err error, fieldPath, detail string) {
	GinkgoHelper()
	Expect(err).To(HaveOccurred())
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
	Expect(err.Error()).To(ContainSubstring(fieldPath))
	var status apierrors.APIStatus
	Expect(errors.As(err, &status)).To(BeTrue())
	Expect(status.Status().Details).NotTo(BeNil())
	Expect(status.Status().Details.Causes).To(ContainElement(SatisfyAll(
		HaveField("Field", fieldPath),
		HaveField("Message", ContainSubstring(detail)),
	)), "causes of %v", err)
}

// expectNotStored asserts that obj does not exist.
func expectNotStored(obj client.Object) {
	GinkgoHelper()
	err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	Expect(apierrors.IsNotFound(err)).To(BeTrue(), "want NotFound, got %v", err)
}

// Builders for allowlist specs.

func alPort(protocol corev1.Protocol, p intstr.IntOrString) moatv1alpha1.Port {
	return moatv1alpha1.Port{Protocol: ptr.To(protocol), Port: &p}
}

func alPortRange(from, to int32) moatv1alpha1.Port {
	return moatv1alpha1.Port{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(from)), EndPort: &to}
}

func alIngress(peer moatv1alpha1.Peer, ports ...moatv1alpha1.Port) moatv1alpha1.NetworkAllowlistSpec {
	return moatv1alpha1.NetworkAllowlistSpec{Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{peer}, Ports: ports}}}
}

func alEgress(peer moatv1alpha1.Peer, ports ...moatv1alpha1.Port) moatv1alpha1.NetworkAllowlistSpec {
	return moatv1alpha1.NetworkAllowlistSpec{Egress: []moatv1alpha1.EgressRule{{To: []moatv1alpha1.Peer{peer}, Ports: ports}}}
}

func alIPBlock(cidr string, except ...string) moatv1alpha1.Peer {
	return moatv1alpha1.Peer{IPBlock: &moatv1alpha1.IPBlock{CIDR: cidr, Except: except}}
}

func alService(namespace, name string) moatv1alpha1.Peer {
	return moatv1alpha1.Peer{Service: &moatv1alpha1.ServiceReference{Namespace: namespace, Name: name}}
}

func alNamespace(name string) moatv1alpha1.Peer {
	return moatv1alpha1.Peer{Namespace: name}
}

// userNetworkPolicy returns a NetworkPolicy (not yet created) that lets the
// namespace's pods receive traffic from peer on ports.
func userNetworkPolicy(namespace, name string, peer networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{peer}, Ports: ports}},
		},
	}
}

// isolate labels an existing namespace moat.dev/isolated=true through an
// update and returns it as stored.
func labelIsolated(ns *corev1.Namespace, opts ...client.UpdateOption) *corev1.Namespace {
	GinkgoHelper()
	updated := ns.DeepCopy()
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	updated.Labels[moatv1alpha1.IsolationLabel] = "true"
	Expect(k8sClient.Update(ctx, updated, opts...)).To(Succeed())
	return updated
}

// aggregateClusterRole fills an aggregated ClusterRole (such as the
// built-in edit) with the rules of the ClusterRoles its aggregation rule
// selects, as kube-controller-manager's clusterrole-aggregation controller
// does; envtest runs no controller manager.
func aggregateClusterRole(name string) {
	GinkgoHelper()
	role := &rbacv1.ClusterRole{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, role)).To(Succeed())
	Expect(role.AggregationRule).NotTo(BeNil(), "ClusterRole %s is not aggregated", name)
	var rules []rbacv1.PolicyRule
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		selector, err := metav1.LabelSelectorAsSelector(&sel)
		Expect(err).NotTo(HaveOccurred())
		var parts rbacv1.ClusterRoleList
		Expect(k8sClient.List(ctx, &parts, client.MatchingLabelsSelector{Selector: selector})).To(Succeed())
		for _, part := range parts.Items {
			rules = append(rules, part.Rules...)
		}
	}
	Expect(rules).NotTo(BeEmpty())
	role.Rules = rules
	Expect(k8sClient.Update(ctx, role)).To(Succeed())
}

// waitForRBAC waits until the RBAC authorizer (which learns of new roles
// and bindings through informers) lets c's user do verb on NetworkPolicies
// in namespace, so that a denial that follows comes from admission.
func waitForRBAC(c client.Client, namespace, verb string) {
	GinkgoHelper()
	Eventually(func() (bool, error) {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: verb, Group: networkingv1.GroupName, Resource: "networkpolicies",
			},
		}}
		if err := c.Create(ctx, review); err != nil {
			return false, err
		}
		return review.Status.Allowed, nil
	}).WithTimeout(10*time.Second).Should(BeTrue(), "RBAC lets the user %s networkpolicies in %s", verb, namespace)
}

// waitForManagedPolicy waits until the controller has written the named
// managed policy and returns it as stored.
func waitForManagedPolicy(namespace, name string) *networkingv1.NetworkPolicy {
	GinkgoHelper()
	np := &networkingv1.NetworkPolicy{}
	Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, np)
	}).Should(Succeed())
	return np
}

// updateAllowlistSpec changes the spec of the stored allowlist al through c
// (retrying on conflicts with the controller's status writes) and returns
// the warnings of the successful update.
func updateAllowlistSpec(c client.Client, al *moatv1alpha1.NetworkAllowlist, mutate func(*moatv1alpha1.NetworkAllowlistSpec), rec *warningRecorder) []string {
	GinkgoHelper()
	var warnings []string
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(al), al); err != nil {
			return err
		}
		mutate(&al.Spec)
		rec.take()
		err := c.Update(ctx, al)
		warnings = rec.take()
		return err
	})).To(Succeed())
	return warnings
}

var _ = Describe("Admission webhooks", func() {
	Describe("NetworkAllowlist rejections (DESIGN §5)", func() {
		var ns *corev1.Namespace

		BeforeEach(func() {
			ns = createIsolatedNamespace()
			// A Service without a selector (endpoints managed by hand, as
			// for an external database) and an ExternalName Service.
			createService(ns.Name, "external-db", nil, corev1.ServicePort{Port: 5432})
			Expect(k8sClient.Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "external-name"},
				Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"},
			})).To(Succeed())
		})

		DescribeTable("is refused by the API server with the field path, and nothing is stored",
			func(spec moatv1alpha1.NetworkAllowlistSpec, fieldPath, detail string, byMoat bool) {
				al := newAllowlist(ns.Name, "rejected", spec)
				err := k8sClient.Create(ctx, al)
				expectInvalid(err, fieldPath, detail)
				if byMoat {
					Expect(err.Error()).To(HavePrefix(allowlistWebhook))
				}
				expectNotStored(al)
			},
			Entry("a Service peer whose Service has no selector",
				alEgress(alService("", "external-db")), "spec.egress[0].to[0].service", "has no selector", true),
			Entry("a Service peer whose Service is of type ExternalName",
				alEgress(alService("", "external-name")), "spec.egress[0].to[0].service", "ExternalName", true),
			Entry("a CIDR that does not parse",
				alEgress(alIPBlock("10.1.0.0/33")), "spec.egress[0].to[0].ipBlock.cidr", "", false),
			Entry("a CIDR with host bits set",
				alEgress(alIPBlock("10.1.0.1/24")), "spec.egress[0].to[0].ipBlock.cidr", "10.1.0.0/24", false),
			Entry("a CIDR with leading zeros",
				alEgress(alIPBlock("010.1.0.0/24")), "spec.egress[0].to[0].ipBlock.cidr", "", false),
			Entry("an IPv4-mapped IPv6 CIDR",
				alEgress(alIPBlock("::ffff:10.1.0.0/120")), "spec.egress[0].to[0].ipBlock.cidr", "", false),
			Entry("an except outside its cidr",
				alIngress(alIPBlock("10.1.0.0/24", "10.2.0.0/25")), "spec.ingress[0].from[0].ipBlock.except", "", false),
			Entry("an except of the other address family",
				alIngress(alIPBlock("10.1.0.0/24", "2001:db8::/64")), "spec.ingress[0].from[0].ipBlock.except", "", false),
			Entry("SCTP on a cluster without SCTP support",
				alIngress(alNamespace("default"), alPort(corev1.ProtocolSCTP, intstr.FromInt32(9000))),
				"spec.ingress[0].ports[0].protocol", "--sctp-enabled", true),
			Entry("port 0",
				alIngress(alNamespace("default"), alPort(corev1.ProtocolTCP, intstr.FromInt32(0))), "spec.ingress[0].ports[0].port", "", false),
			Entry("port 65536",
				alIngress(alNamespace("default"), alPort(corev1.ProtocolTCP, intstr.FromInt32(65536))), "spec.ingress[0].ports[0].port", "", false),
			Entry("an invalid port name",
				alIngress(alNamespace("default"), alPort(corev1.ProtocolTCP, intstr.FromString("Bad_Name"))), "spec.ingress[0].ports[0].port", "", false),
			Entry("endPort below port",
				alIngress(alNamespace("default"), alPortRange(100, 90)), "spec.ingress[0].ports[0].endPort", "", false),
			Entry("endPort with a named port",
				alIngress(alNamespace("default"), moatv1alpha1.Port{Port: ptr.To(intstr.FromString("http")), EndPort: ptr.To[int32](90)}),
				"spec.ingress[0].ports[0].endPort", "", false),
			Entry("a peer with no kind",
				alIngress(moatv1alpha1.Peer{}), "spec.ingress[0].from[0]", "exactly one of namespace, service, ipBlock, project or kubernetesAPI", false),
			Entry("a peer with two kinds",
				alIngress(moatv1alpha1.Peer{Namespace: "default", IPBlock: &moatv1alpha1.IPBlock{CIDR: "192.168.1.1/32"}}),
				"spec.ingress[0].from[0]", "exactly one of namespace, service, ipBlock, project or kubernetesAPI", false),
			Entry("an invalid namespace name",
				alIngress(alNamespace("Not_Valid")), "spec.ingress[0].from[0].namespace", "", false),
			Entry("an invalid Service name",
				alEgress(alService("", "9nginx")), "spec.egress[0].to[0].service.name", "", false),
		)

		It("refuses the seed's egress to a Service without a selector in another project", func() {
			// The seed's example: egress from demo-project-1 to the Service
			// nginx of demo-project-2, here without a selector.
			other := createNamespace(nil)
			createService(other.Name, "nginx", nil, corev1.ServicePort{Port: 80})
			al := newAllowlist(ns.Name, "to-nginx", alEgress(alService(other.Name, "nginx"), alPort(corev1.ProtocolTCP, intstr.FromInt32(80))))
			err := k8sClient.Create(ctx, al)
			expectInvalid(err, "spec.egress[0].to[0].service", "has no selector")
			Expect(err.Error()).To(HavePrefix(allowlistWebhook))
			Expect(err.Error()).To(ContainSubstring("use an ipBlock peer"))
			expectNotStored(al)
		})
	})

	Describe("NetworkAllowlist warnings", func() {
		var (
			ns       *corev1.Namespace
			c        client.Client
			warnings *warningRecorder
		)

		BeforeEach(func() {
			ns = createIsolatedNamespace()
			c, warnings = warningClient()
		})

		// createWithWarnings creates the allowlist and returns the warnings
		// of that request, asserting that it was admitted and stored.
		createWithWarnings := func(al *moatv1alpha1.NetworkAllowlist) []string {
			GinkgoHelper()
			warnings.take()
			Expect(c.Create(ctx, al)).To(Succeed())
			w := warnings.take()
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(al), &moatv1alpha1.NetworkAllowlist{})).To(Succeed())
			return w
		}

		warning := func(prefix, text string) OmegaMatcher {
			return SatisfyAll(HavePrefix(prefix+": "), ContainSubstring(text))
		}

		DescribeTable("is admitted with exactly one admission warning",
			func(spec func() moatv1alpha1.NetworkAllowlistSpec, fieldPath, text string) {
				w := createWithWarnings(newAllowlist(ns.Name, "warned", spec()))
				Expect(w).To(ConsistOf(warning(fieldPath, text)))
			},
			Entry("a Service peer whose Service does not exist yet",
				func() moatv1alpha1.NetworkAllowlistSpec { return alEgress(alService("", "not-yet")) },
				"spec.egress[0].to[0].service", "does not exist yet"),
			Entry("a namespace peer that does not exist",
				func() moatv1alpha1.NetworkAllowlistSpec { return alIngress(alNamespace("e2e-no-such-namespace")) },
				"spec.ingress[0].from[0].namespace", "does not exist yet"),
			Entry("0.0.0.0/0",
				func() moatv1alpha1.NetworkAllowlistSpec { return alEgress(alIPBlock("0.0.0.0/0")) },
				"spec.egress[0].to[0].ipBlock.cidr", "matches every IPv4 address"),
			Entry("::/0",
				func() moatv1alpha1.NetworkAllowlistSpec { return alEgress(alIPBlock("::/0")) },
				"spec.egress[0].to[0].ipBlock.cidr", "matches every IPv6 address"),
			Entry("an ipBlock overlapping the pod network",
				func() moatv1alpha1.NetworkAllowlistSpec { return alEgress(alIPBlock("10.244.3.0/24")) },
				"spec.egress[0].to[0].ipBlock.cidr", "overlaps the cluster's pod network "+e2ePodCIDR.String()),
			Entry("an ipBlock overlapping the Service network",
				func() moatv1alpha1.NetworkAllowlistSpec { return alEgress(alIPBlock("10.96.0.10/32")) },
				"spec.egress[0].to[0].ipBlock.cidr", "overlaps the cluster's Service network "+e2eServiceCIDR.String()),
		)

		It("warns about an ingress ipBlock in a namespace whose NodePort Service keeps externalTrafficPolicy Cluster", func() {
			Expect(k8sClient.Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "web"},
				Spec: corev1.ServiceSpec{
					Type:                  corev1.ServiceTypeNodePort,
					Selector:              map[string]string{"app": "web"},
					Ports:                 []corev1.ServicePort{{Port: 80}},
					ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
				},
			})).To(Succeed())
			al := newAllowlist(ns.Name, "from-office", alIngress(alIPBlock("192.168.1.1/32"), alPort(corev1.ProtocolTCP, intstr.FromInt32(80))))
			// The webhook reads Services from moat's cache: wait (with a
			// dry run, which stores nothing) until it knows the new one.
			Eventually(func() []string {
				warnings.take()
				Expect(c.Create(ctx, al.DeepCopy(), client.DryRunAll)).To(Succeed())
				return warnings.take()
			}).ShouldNot(BeEmpty())
			Expect(createWithWarnings(al)).To(ConsistOf(warning("spec.ingress[0].from[0].ipBlock", "externalTrafficPolicy Cluster")))
		})

		It("warns about ingress from a project that restricts its egress without a matching rule (the seed's first troubleshooting note)", func() {
			peer := createIsolatedNamespace()
			createAllowlist(peer.Name, "egress-elsewhere", alEgress(alIPBlock("192.0.2.0/24")))
			al := newAllowlist(ns.Name, "from-peer", alIngress(alNamespace(peer.Name)))
			Eventually(func() []string {
				warnings.take()
				Expect(c.Create(ctx, al.DeepCopy(), client.DryRunAll)).To(Succeed())
				return warnings.take()
			}).ShouldNot(BeEmpty())
			Expect(createWithWarnings(al)).To(ConsistOf(warning("spec.ingress[0].from[0].namespace", "restricts its egress")))

			// Once the peer project allows egress to this one, the same
			// rule is admitted without a warning.
			createAllowlist(peer.Name, "egress-here", alEgress(alNamespace(ns.Name)))
			Eventually(func() []string {
				warnings.take()
				fresh := newAllowlist(ns.Name, "from-peer-again", al.Spec)
				Expect(c.Create(ctx, fresh, client.DryRunAll)).To(Succeed())
				return warnings.take()
			}).Should(BeEmpty())
		})

		It("makes a previously warned allowlist valid once its Service appears", func() {
			al := newAllowlist(ns.Name, "to-backend", alEgress(alService("", "backend"), alPort(corev1.ProtocolTCP, intstr.FromInt32(8080))))
			Expect(createWithWarnings(al)).To(ConsistOf(warning("spec.egress[0].to[0].service", "Service "+ns.Name+"/backend does not exist yet")))

			createService(ns.Name, "backend", map[string]string{"app": "backend"}, corev1.ServicePort{Port: 8080})

			// The update changes the spec (so it is validated again) and
			// adds a second, still missing Service: exactly that one is
			// reported, the first is now valid.
			Expect(updateAllowlistSpec(c, al, func(spec *moatv1alpha1.NetworkAllowlistSpec) {
				spec.Egress[0].To = append(spec.Egress[0].To, alService("", "cache"))
			}, warnings)).To(ConsistOf(warning("spec.egress[0].to[1].service", "Service "+ns.Name+"/cache does not exist yet")))

			// And with the second peer gone again, no warning at all.
			Expect(updateAllowlistSpec(c, al, func(spec *moatv1alpha1.NetworkAllowlistSpec) {
				spec.Egress[0].To = spec.Egress[0].To[:1]
			}, warnings)).To(BeEmpty())
		})

		It("admits metadata-only updates of an allowlist that no longer passes", func() {
			svc := createService(ns.Name, "db", map[string]string{"app": "db"}, corev1.ServicePort{Port: 5432})
			al := createAllowlist(ns.Name, "to-db", alEgress(alService("", "db")))
			// The Service loses its selector: the allowlist would now be
			// refused, but relabelling (or removing a finalizer) must work.
			svc.Spec.Selector = nil
			Expect(k8sClient.Update(ctx, svc)).To(Succeed())
			// The webhook reads Services from its cache, which sees the
			// change a moment later.
			Eventually(func() error {
				return k8sClient.Create(ctx, newAllowlist(ns.Name, "probe", al.Spec), client.DryRunAll)
			}).Should(MatchError(ContainSubstring("has no selector")))

			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(al), al); err != nil {
					return err
				}
				al.Labels = map[string]string{"team": "payments"}
				return k8sClient.Update(ctx, al)
			})).To(Succeed())
		})
	})

	Describe("Namespace isolation label", func() {
		It("refuses to create a namespace with a value other than true or false", func() {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name:   "e2e-label-" + rand.String(6),
				Labels: map[string]string{moatv1alpha1.IsolationLabel: "yes"},
			}}
			err := k8sClient.Create(ctx, ns)
			expectInvalid(err, "metadata.labels[moat.dev/isolated]", `must be "true"`)
			Expect(err.Error()).To(HavePrefix(namespaceLabelWebhook))
			expectNotStored(ns)
		})

		It("refuses to change the value of an existing namespace to anything but true or false", func() {
			ns := createNamespace(map[string]string{moatv1alpha1.IsolationLabel: "false"})
			updated := ns.DeepCopy()
			updated.Labels[moatv1alpha1.IsolationLabel] = "True"
			err := k8sClient.Update(ctx, updated)
			expectInvalid(err, "metadata.labels[moat.dev/isolated]", `must be "true"`)

			stored := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ns), stored)).To(Succeed())
			Expect(stored.Labels).To(HaveKeyWithValue(moatv1alpha1.IsolationLabel, "false"))
		})

		It("refuses a moat.dev/group-ingress value other than true or false, at creation and on update", func() {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name:   "e2e-label-" + rand.String(6),
				Labels: map[string]string{moatv1alpha1.IsolationLabel: "true", moatv1alpha1.GroupIngressLabel: "no"},
			}}
			err := k8sClient.Create(ctx, ns)
			expectInvalid(err, "metadata.labels[moat.dev/group-ingress]", `must be "true"`)
			Expect(err.Error()).To(HavePrefix(namespaceLabelWebhook))
			expectNotStored(ns)

			valid := createNamespace(map[string]string{moatv1alpha1.IsolationLabel: "true", moatv1alpha1.GroupIngressLabel: "false"})
			updated := valid.DeepCopy()
			updated.Labels[moatv1alpha1.GroupIngressLabel] = "False"
			expectInvalid(k8sClient.Update(ctx, updated), "metadata.labels[moat.dev/group-ingress]", `must be "true"`)
			stored := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(valid), stored)).To(Succeed())
			Expect(stored.Labels).To(HaveKeyWithValue(moatv1alpha1.GroupIngressLabel, "false"))
		})
	})

	Describe("NetworkPolicy checks", func() {
		var (
			ns       *corev1.Namespace
			c        client.Client
			warnings *warningRecorder
		)

		BeforeEach(func() {
			ns = createNamespace(nil)
			c, warnings = warningClient()
		})

		DescribeTable("refuses a user-written policy with the field path, and nothing is stored",
			func(peer networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, fieldPath, detail string, byMoat bool) {
				np := userNetworkPolicy(ns.Name, "user-written", peer, ports...)
				err := k8sClient.Create(ctx, np)
				expectInvalid(err, fieldPath, detail)
				if byMoat {
					Expect(err.Error()).To(HavePrefix(networkPolicyWebhook))
				}
				expectNotStored(np)
			},
			// The API server's own validation (strict CIDRs) comes first.
			Entry("a CIDR with host bits set",
				networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.1/24"}}, nil,
				"spec.ingress[0].from[0].ipBlock.cidr", "", false),
			Entry("an except outside its cidr",
				networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/24", Except: []string{"10.2.0.0/25"}}}, nil,
				"spec.ingress[0].from[0].ipBlock.except[0]", "", false),
			Entry("SCTP on a cluster without SCTP support",
				networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}},
				[]networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(9000))}},
				"spec.ingress[0].ports[0].protocol", "--sctp-enabled", true),
		)

		It("admits a policy whose ipBlock overlaps the pod network, with a warning", func() {
			np := userNetworkPolicy(ns.Name, "pods", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.244.0.0/24"}})
			Expect(c.Create(ctx, np)).To(Succeed())
			Expect(warnings.take()).To(ConsistOf(SatisfyAll(
				HavePrefix("spec.ingress[0].from[0].ipBlock.cidr: "),
				ContainSubstring("overlaps the cluster's pod network 10.244.0.0/16"))))
		})
	})

	Describe("SCTP", Serial, func() {
		sctpAllowlist := func(namespace string) *moatv1alpha1.NetworkAllowlist {
			return newAllowlist(namespace, "sctp", alIngress(alNamespace("default"), alPort(corev1.ProtocolSCTP, intstr.FromInt32(9000))))
		}
		sctpPolicy := func(namespace string) *networkingv1.NetworkPolicy {
			return userNetworkPolicy(namespace, "sctp", networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}},
				networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(9000))})
		}

		It("is refused while --sctp-enabled is off (the default)", func() {
			ns := createNamespace(nil)
			al := sctpAllowlist(ns.Name)
			expectInvalid(k8sClient.Create(ctx, al), "spec.ingress[0].ports[0].protocol", "--sctp-enabled")
			expectNotStored(al)
			np := sctpPolicy(ns.Name)
			expectInvalid(k8sClient.Create(ctx, np), "spec.ingress[0].ports[0].protocol", "--sctp-enabled")
			expectNotStored(np)
		})

		When("moat runs with --sctp-enabled", func() {
			BeforeEach(func() {
				restartWithConfig(func(c *validation.Config) { c.SCTPEnabled = true })
			})

			It("is accepted in allowlists and NetworkPolicies", func() {
				ns := createNamespace(nil)
				Expect(k8sClient.Create(ctx, sctpAllowlist(ns.Name))).To(Succeed())
				Expect(k8sClient.Create(ctx, sctpPolicy(ns.Name))).To(Succeed())
			})
		})
	})

	Describe("ratcheting on update", Serial, func() {
		// restartWithSCTP restarts moat with SCTP support on or off and
		// puts the default configuration back after the spec.
		restartWithSCTP := func(on bool) {
			GinkgoHelper()
			stopManager()
			webhookValidation.SCTPEnabled = on
			startManager()
		}
		BeforeEach(func() {
			DeferCleanup(func() {
				stopManager()
				webhookValidation = defaultWebhookValidation()
				startManager()
			})
		})
		const kept = "kept because it was stored before this check applied"

		It("lets an allowlist stored while SCTP was on be edited and shed its SCTP port, but not gain a new one", func() {
			ns := createNamespace(nil)
			restartWithSCTP(true)
			al := createAllowlist(ns.Name, "sctp", moatv1alpha1.NetworkAllowlistSpec{
				Ingress: []moatv1alpha1.IngressRule{
					{From: []moatv1alpha1.Peer{alNamespace("default")}, Ports: []moatv1alpha1.Port{alPort(corev1.ProtocolTCP, intstr.FromInt32(80))}},
					{From: []moatv1alpha1.Peer{alNamespace("default")}, Ports: []moatv1alpha1.Port{alPort(corev1.ProtocolSCTP, intstr.FromInt32(9000))}},
				},
			})
			restartWithSCTP(false)
			wc, warnings := warningClient()

			// Every edit re-reads the allowlist first: the controller writes
			// its status (observedGeneration) after each spec change.
			By("an edit of another rule is admitted with a warning naming the kept SCTP port")
			Expect(updateAllowlistSpec(wc, al, func(s *moatv1alpha1.NetworkAllowlistSpec) {
				s.Ingress[0].Ports[0].Port = ptr.To(intstr.FromInt32(8080))
			}, warnings)).To(ConsistOf(SatisfyAll(
				HavePrefix("spec.ingress[1].ports[0].protocol: "+kept), ContainSubstring("--sctp-enabled"))))

			By("removing the first rule moves the SCTP port, which stays kept")
			Expect(updateAllowlistSpec(wc, al, func(s *moatv1alpha1.NetworkAllowlistSpec) {
				s.Ingress = s.Ingress[1:]
			}, warnings)).To(ConsistOf(HavePrefix("spec.ingress[0].ports[0].protocol: " + kept)))

			By("a new SCTP port is refused")
			err := retry.OnError(retry.DefaultRetry, apierrors.IsConflict, func() error {
				added := &moatv1alpha1.NetworkAllowlist{}
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(al), added); err != nil {
					return err
				}
				added.Spec.Ingress[0].Ports = append(added.Spec.Ingress[0].Ports, alPort(corev1.ProtocolSCTP, intstr.FromInt32(9001)))
				return wc.Update(ctx, added)
			})
			expectInvalid(err, "spec.ingress[0].ports[1].protocol", "--sctp-enabled")
			Expect(warnings.take()).To(ConsistOf(HavePrefix("spec.ingress[0].ports[0].protocol: " + kept)))

			By("the SCTP port can be removed")
			Expect(updateAllowlistSpec(wc, al, func(s *moatv1alpha1.NetworkAllowlistSpec) {
				s.Ingress[0].Ports[0] = alPort(corev1.ProtocolTCP, intstr.FromInt32(9000))
			}, warnings)).To(BeEmpty())
		})

		It("lets a NetworkPolicy stored before moat saw it be edited, but refuses what the edit adds", func() {
			ns := createNamespace(nil)
			By("storing a policy with an SCTP port while moat is down (failurePolicy Ignore)")
			stopManager()
			sctp := func(port int32) networkingv1.NetworkPolicyPort {
				return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(port))}
			}
			np := userNetworkPolicy(ns.Name, "legacy", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/24"}}, sctp(9000))
			Expect(k8sClient.Create(ctx, np)).To(Succeed())
			startManager()
			wc, warnings := warningClient()

			By("an edit that keeps the SCTP port is admitted with a warning")
			Expect(wc.Get(ctx, client.ObjectKeyFromObject(np), np)).To(Succeed())
			np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80))})
			Expect(wc.Update(ctx, np)).To(Succeed())
			Expect(warnings.take()).To(ContainElement(HavePrefix("spec.ingress[0].ports[0].protocol: " + kept)))

			By("a second SCTP port is refused")
			Expect(wc.Get(ctx, client.ObjectKeyFromObject(np), np)).To(Succeed())
			np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports, sctp(9001))
			expectInvalid(wc.Update(ctx, np), "spec.ingress[0].ports[2].protocol", "--sctp-enabled")
		})
	})

	Describe("labelling an existing namespace", func() {
		It("puts the default isolation policies in place before the update returns", func() {
			ns := createNamespace(nil)
			updated := labelIsolated(ns)

			// Read back at once, uncached, without polling.
			policies := listManagedNetworkPolicies(ns.Name)
			Expect(policies).To(ContainElement(HaveField("ObjectMeta.Name", policy.DefaultIngressPolicyName)))
			ingress := policies[0]
			for _, np := range policies {
				if np.Name == policy.DefaultIngressPolicyName {
					ingress = np
				}
			}
			Expect(ingress.Labels).To(HaveKeyWithValue(moatv1alpha1.ManagedByLabel, moatv1alpha1.ManagedByValue))
			Expect(ingress.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress))

			// It was written during admission, before the namespace update
			// was stored (etcd revisions order the two writes), not by the
			// controller reacting to the stored label afterwards.
			policyRevision, err := strconv.ParseUint(ingress.ResourceVersion, 10, 64)
			Expect(err).NotTo(HaveOccurred())
			namespaceRevision, err := strconv.ParseUint(updated.ResourceVersion, 10, 64)
			Expect(err).NotTo(HaveOccurred())
			Expect(policyRevision).To(BeNumerically("<", namespaceRevision))
		})

		It("has them in place when isolation is turned back on right after it was turned off", func() {
			ns := labelIsolated(createNamespace(nil))
			Expect(listManagedNetworkPolicies(ns.Name)).NotTo(BeEmpty())

			// Off, and at once on again: the controller may still be
			// deleting the policies of the "off" state while the second
			// labelling request is admitted.
			off := ns.DeepCopy()
			off.Labels[moatv1alpha1.IsolationLabel] = "false"
			Expect(k8sClient.Update(ctx, off)).To(Succeed())
			labelIsolated(off)

			Expect(listManagedNetworkPolicies(ns.Name)).To(ContainElement(HaveField("ObjectMeta.Name", policy.DefaultIngressPolicyName)))
			Consistently(func() []networkingv1.NetworkPolicy { return listManagedNetworkPolicies(ns.Name) }).
				WithTimeout(time.Second).Should(ContainElement(HaveField("ObjectMeta.Name", policy.DefaultIngressPolicyName)))
		})

		It("writes nothing for a dry-run update", func() {
			ns := createNamespace(nil)
			labelIsolated(ns, client.DryRunAll)

			Expect(listNetworkPolicies(ns.Name)).To(BeEmpty())
			stored := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ns), stored)).To(Succeed())
			Expect(stored.Labels).NotTo(HaveKey(moatv1alpha1.IsolationLabel))
			Consistently(func() []networkingv1.NetworkPolicy { return listNetworkPolicies(ns.Name) }).
				WithTimeout(2 * time.Second).Should(BeEmpty())
		})
	})

	Describe("the managed NetworkPolicy tamper guard", func() {
		const tenant = "e2e-tenant"
		var (
			ns      *corev1.Namespace
			managed *networkingv1.NetworkPolicy
		)

		BeforeEach(func() {
			aggregateClusterRole("edit")
			ns = createIsolatedNamespace()
			managed = waitForManagedPolicy(ns.Name, policy.DefaultIngressPolicyName)
			bindClusterRole(ns.Name, tenant, "edit")
			bindClusterRole(ns.Name, moatServiceAccount, "edit")
			for _, user := range []string{tenant, moatServiceAccount} {
				for _, verb := range []string{"create", "update", "delete"} {
					waitForRBAC(impersonatingClient(user), ns.Name, verb)
				}
			}
		})

		expectTamperDenied := func(err error) {
			GinkgoHelper()
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
			// A managed policy with ipBlocks (the allowed ingress CIDR) also
			// matches networkpolicies.moat.dev; the API server calls both
			// in parallel and reports whichever denies first. The handler
			// is the same.
			Expect(err.Error()).To(Or(HavePrefix(managedPolicyWebhook), HavePrefix(networkPolicyWebhook)))
			Expect(err.Error()).To(ContainSubstring("moat manages it"))
		}

		It("lets a tenant with edit rights manage their own policies", func() {
			c := impersonatingClient(tenant)
			own := userNetworkPolicy(ns.Name, "own", networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}})
			Expect(c.Create(ctx, own)).To(Succeed())
			Expect(c.Delete(ctx, own)).To(Succeed())
		})

		It("denies a tenant deleting or changing a managed policy", func() {
			c := impersonatingClient(tenant)
			expectTamperDenied(c.Delete(ctx, managed.DeepCopy()))

			changed := managed.DeepCopy()
			changed.Spec.Ingress = append(changed.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
			expectTamperDenied(c.Update(ctx, changed))

			unlabelled := managed.DeepCopy()
			delete(unlabelled.Labels, moatv1alpha1.ManagedByLabel)
			expectTamperDenied(c.Update(ctx, unlabelled))

			stored := &networkingv1.NetworkPolicy{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(managed), stored)).To(Succeed())
			Expect(stored.ResourceVersion).To(Equal(managed.ResourceVersion))
		})

		It("denies a tenant forging a policy labelled managed-by moat", func() {
			c := impersonatingClient(tenant)
			forged := userNetworkPolicy(ns.Name, "forged", networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}})
			forged.Labels = policy.ManagedLabels()
			expectTamperDenied(c.Create(ctx, forged))
			expectNotStored(forged)
		})

		DescribeTable("lets trusted identities change and delete managed policies",
			func(user string, groups []string) {
				bindClusterRole(ns.Name, user, "edit")
				c := impersonatingClient(user, groups...)
				waitForRBAC(c, ns.Name, "update")
				waitForRBAC(c, ns.Name, "delete")
				changed := managed.DeepCopy()
				changed.Annotations = map[string]string{"e2e.moat.dev/touched-by": "trusted"}
				Expect(c.Update(ctx, changed)).To(Succeed())
				Expect(c.Delete(ctx, changed)).To(Succeed())
			},
			Entry("moat's ServiceAccount", moatServiceAccount, nil),
			Entry("a member of system:masters", "e2e-cluster-admin", []string{"system:masters"}),
			Entry("a member of an extra --admin-groups group (checked by the handler)", "e2e-network-admin", []string{extraAdminGroup}),
		)
	})

	Describe("while moat is stopped", Serial, func() {
		BeforeEach(func() {
			for _, name := range []string{"moat-system", "kube-system"} {
				err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
				Expect(err == nil || apierrors.IsAlreadyExists(err)).To(BeTrue(), "creating namespace %s: %v", name, err)
			}
			stopManager()
			DeferCleanup(startManager)
		})

		It("still admits objects in kube-system and moat's namespace", func() {
			for _, namespace := range []string{"moat-system", "kube-system"} {
				By("creating an allowlist and a NetworkPolicy with an ipBlock in " + namespace)
				Expect(k8sClient.Create(ctx, newAllowlist(namespace, "e2e-while-down-"+rand.String(5), alEgress(alIPBlock("192.0.2.0/24"))))).To(Succeed())
				Expect(k8sClient.Create(ctx, userNetworkPolicy(namespace, "e2e-while-down-"+rand.String(5),
					networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24"}}))).To(Succeed())
			}

			By("refusing the same allowlist in a project namespace: its webhook fails closed")
			ns := createNamespace(nil)
			err := k8sClient.Create(ctx, newAllowlist(ns.Name, "while-down", alEgress(alIPBlock("192.0.2.0/24"))))
			Expect(err).To(MatchError(ContainSubstring(`failed calling webhook "networkallowlists.moat.dev"`)))
		})

		It("still lets namespaces be labelled, and the namespace controller delete managed policies", func() {
			// Labelling succeeds: the mutating webhook is optional and the
			// validating one only sees invalid values.
			labelIsolated(createNamespace(nil))

			// A namespace isolated while moat was up holds a managed policy.
			// With moat down, a tenant cannot touch it but the namespace
			// controller (namespace deletion) can.
			DeferCleanup(stopManager)
			startManager()
			isolated := createIsolatedNamespace()
			managed := waitForManagedPolicy(isolated.Name, policy.DefaultIngressPolicyName)
			stopManager()

			aggregateClusterRole("edit")
			bindClusterRole(isolated.Name, "e2e-tenant", "edit")
			waitForRBAC(impersonatingClient("e2e-tenant"), isolated.Name, "delete")
			err := impersonatingClient("e2e-tenant").Delete(ctx, managed.DeepCopy())
			Expect(err).To(MatchError(ContainSubstring(`failed calling webhook "managed-networkpolicies.moat.dev"`)))

			Expect(impersonatingClient("system:serviceaccount:kube-system:namespace-controller").Delete(ctx, managed)).To(Succeed())
			expectNotStored(managed)
		})
	})
})
