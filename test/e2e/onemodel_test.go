package e2e

import (
	"errors"
	"sort"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/controller"
	"moat.dev/moat/policy"
)

// One model: the webhook's tenant rule and the controller's beyond-isolation
// report are built from the same configuration value (webhookValidation, as
// moat serve hands one value to both) and must agree on every policy,
// including group selectors and port-restricted peers.
var _ = Describe("one model of what a project admits", func() {
	const tenant = "e2e-one-model-tenant"

	It("gives the webhook and the controller identical tenant findings", func() {
		aggregateClusterRole("edit")
		ns := createNamespace(map[string]string{projectLabel: "ws-a"})
		partner := ensureNamespace("e2e-one-model-partner")
		createAllowlist(ns.Name, "partner", alIngress(alNamespace(partner.Name), alPort(corev1.ProtocolTCP, intstr.FromInt32(80))))
		createAllowlist(ns.Name, "group-b", alIngress(moatv1alpha1.Peer{Project: "ws-b"}))

		group := func(value string) networkingv1.NetworkPolicyPeer {
			return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{projectLabel: value}}}
		}
		corpus := map[string]networkingv1.NetworkPolicyIngressRule{
			"own-group":          {From: []networkingv1.NetworkPolicyPeer{group("ws-a")}},
			"allowlisted-group":  {From: []networkingv1.NetworkPolicyPeer{group("ws-b")}, Ports: []networkingv1.NetworkPolicyPort{tcpPort(443)}},
			"other-group":        {From: []networkingv1.NetworkPolicyPeer{group("ws-c")}},
			"partner-on-port":    {From: []networkingv1.NetworkPolicyPeer{npNamespacePeer(partner.Name)}, Ports: []networkingv1.NetworkPolicyPort{tcpPort(80)}},
			"partner-other-port": {From: []networkingv1.NetworkPolicyPeer{npNamespacePeer(partner.Name)}, Ports: []networkingv1.NetworkPolicyPort{tcpPort(8080)}},
			"partner-every-port": {From: []networkingv1.NetworkPolicyPeer{npNamespacePeer(partner.Name)}},
			"allowed-namespace":  {From: []networkingv1.NetworkPolicyPeer{npNamespacePeer(allowedIngressNamespace)}},
			"confined":           {From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}},
		}
		want := []string{"other-group", "partner-every-port", "partner-other-port"}
		wantField := map[string]string{
			"other-group":        "spec.ingress[0].from[0].namespaceSelector",
			"partner-every-port": "spec.ingress[0].ports",
			"partner-other-port": "spec.ingress[0].ports[0]",
		}
		build := func(name, suffix string) *networkingv1.NetworkPolicy {
			return &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name + suffix},
				Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{corpus[name]}},
			}
		}

		By("storing the corpus while the namespace is open, then isolating it")
		for name := range corpus {
			Expect(k8sClient.Create(ctx, build(name, ""))).To(Succeed())
		}
		labelIsolated(ns)
		waitForManagedPolicy(ns.Name, policy.DefaultIngressPolicyName)

		By("the controller's report")
		Eventually(func() ([]string, error) {
			var list eventsv1.EventList
			if err := k8sClient.List(ctx, &list, client.InNamespace(ns.Name)); err != nil {
				return nil, err
			}
			var reported []string
			for _, e := range list.Items {
				if e.Reason == controller.EventTenantPolicyBeyondIsolation && e.Regarding.Kind == "NetworkPolicy" {
					reported = append(reported, e.Regarding.Name)
				}
			}
			sort.Strings(reported)
			return reported, nil
		}).Should(Equal(want))

		By("the webhook's verdict on the same policies, written by a tenant")
		bindClusterRole(ns.Name, tenant, "edit")
		c := impersonatingClient(tenant)
		waitForRBAC(c, ns.Name, "create")
		var refused []string
		for name := range corpus {
			// Another name: a dry-run create of a stored name fails
			// with AlreadyExists once admitted.
			err := c.Create(ctx, build(name, "-tenant"), client.DryRunAll)
			if err == nil {
				continue
			}
			var status apierrors.APIStatus
			Expect(apierrors.IsInvalid(err) && errors.As(err, &status)).To(BeTrue(), "%s: %v", name, err)
			Expect(status.Status().Details.Causes).To(ContainElement(HaveField("Field", wantField[name])), "%s: %v", name, err)
			refused = append(refused, name)
		}
		sort.Strings(refused)
		Expect(refused).To(Equal(want))
	})
})
