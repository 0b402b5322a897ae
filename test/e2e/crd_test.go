package e2e

import (
	"errors"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
)

// The CRD's OpenAPI schema and CEL rules, as the real API server enforces them
// before any webhook is called: nothing malformed is stored even while moat is
// down.
var _ = Describe("NetworkAllowlist CRD schema", func() {
	var namespace string
	BeforeEach(func() {
		namespace = createNamespace(nil).Name
	})

	// notChecked is the cause the API server adds when schema errors stopped
	// it from evaluating the CEL rules.
	notChecked := metav1.StatusCause{
		Type:    metav1.CauseTypeFieldValueInvalid,
		Message: "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
		Field:   "<nil>",
	}
	invalid := func(field, message string) metav1.StatusCause {
		return metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: field, Message: "Invalid value: " + message}
	}
	fromNamespace := []moatv1alpha1.Peer{{Namespace: "demo-project-2"}}
	ingressPorts := func(ports ...moatv1alpha1.Port) moatv1alpha1.NetworkAllowlistSpec {
		return moatv1alpha1.NetworkAllowlistSpec{Ingress: []moatv1alpha1.IngressRule{{From: fromNamespace, Ports: ports}}}
	}
	egressTo := func(peers ...moatv1alpha1.Peer) moatv1alpha1.NetworkAllowlistSpec {
		return moatv1alpha1.NetworkAllowlistSpec{Egress: []moatv1alpha1.EgressRule{{To: peers}}}
	}
	ipBlock := func(cidr string, except ...string) moatv1alpha1.Peer {
		return moatv1alpha1.Peer{IPBlock: &moatv1alpha1.IPBlock{CIDR: cidr, Except: except}}
	}
	port := func(p intstr.IntOrString) moatv1alpha1.Port { return moatv1alpha1.Port{Port: &p} }

	DescribeTable("refuses a malformed allowlist with the exact field and message",
		func(spec moatv1alpha1.NetworkAllowlistSpec, want ...metav1.StatusCause) {
			err := k8sClient.Create(ctx, newAllowlist(namespace, "malformed", spec))
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			var status apierrors.APIStatus
			Expect(errors.As(err, &status)).To(BeTrue())
			Expect(status.Status().Details).NotTo(BeNil())
			// The API server reports schema errors in no fixed order.
			Expect(status.Status().Details.Causes).To(ConsistOf(want))

			var list moatv1alpha1.NetworkAllowlistList
			Expect(k8sClient.List(ctx, &list, client.InNamespace(namespace))).To(Succeed())
			Expect(list.Items).To(BeEmpty(), "nothing malformed may be stored")
		},
		Entry("a peer with no kind",
			moatv1alpha1.NetworkAllowlistSpec{Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{{}}}}},
			invalid("spec.ingress[0].from[0]", "exactly one of namespace, service, ipBlock, project or kubernetesAPI must be set")),
		Entry("a peer with two kinds",
			moatv1alpha1.NetworkAllowlistSpec{Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{
				{Namespace: "demo-project-2", IPBlock: &moatv1alpha1.IPBlock{CIDR: "10.0.0.0/8"}},
			}}}},
			invalid("spec.ingress[0].from[0]", "exactly one of namespace, service, ipBlock, project or kubernetesAPI must be set")),
		Entry("a peer with all three kinds, in egress",
			egressTo(moatv1alpha1.Peer{
				Namespace: "demo-project-2",
				Service:   &moatv1alpha1.ServiceReference{Name: "nginx"},
				IPBlock:   &moatv1alpha1.IPBlock{CIDR: "10.0.0.0/8"},
			}),
			invalid("spec.egress[0].to[0]", "exactly one of namespace, service, ipBlock, project or kubernetesAPI must be set")),
		Entry("a cidr that is not a CIDR",
			egressTo(ipBlock("garbage")),
			invalid("spec.egress[0].to[0].ipBlock.cidr", "cidr must be a valid CIDR such as 10.1.0.0/24 or 2001:db8::/64")),
		Entry("a cidr without a prefix length",
			egressTo(ipBlock("10.1.0.1")),
			invalid("spec.egress[0].to[0].ipBlock.cidr", "cidr must be a valid CIDR such as 10.1.0.0/24 or 2001:db8::/64")),
		Entry("a cidr with leading zeros",
			egressTo(ipBlock("010.1.0.0/24")),
			invalid("spec.egress[0].to[0].ipBlock.cidr", "cidr must be a valid CIDR such as 10.1.0.0/24 or 2001:db8::/64")),
		Entry("an IPv4-mapped IPv6 cidr",
			egressTo(ipBlock("::ffff:10.1.0.0/120")),
			invalid("spec.egress[0].to[0].ipBlock.cidr", "cidr must be a valid CIDR such as 10.1.0.0/24 or 2001:db8::/64")),
		Entry("a cidr with host bits set",
			egressTo(ipBlock("10.1.0.1/24")),
			invalid("spec.egress[0].to[0].ipBlock.cidr", "cidr must not have host bits set: use the network address (e.g. 10.1.0.0/24, not 10.1.0.1/24)")),
		Entry("an IPv6 cidr with host bits set, in ingress",
			moatv1alpha1.NetworkAllowlistSpec{Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{ipBlock("2001:db8::1/64")}}}},
			invalid("spec.ingress[0].from[0].ipBlock.cidr", "cidr must not have host bits set: use the network address (e.g. 10.1.0.0/24, not 10.1.0.1/24)")),
		Entry("a cidr longer than any CIDR",
			egressTo(ipBlock("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")),
			metav1.StatusCause{
				Type:    metav1.CauseTypeTooLong,
				Field:   "spec.egress[0].to[0].ipBlock.cidr",
				Message: "Too long: may not be more than 43 bytes",
			},
			notChecked),
		Entry("an except outside cidr",
			egressTo(ipBlock("10.1.0.0/24", "10.1.0.0/25", "10.2.0.0/25")),
			invalid("spec.egress[0].to[0].ipBlock.except", "every except entry must be a CIDR of the same address family inside cidr")),
		Entry("an except wider than cidr",
			egressTo(ipBlock("10.1.0.0/24", "10.1.0.0/16")),
			invalid("spec.egress[0].to[0].ipBlock.except", "every except entry must be a CIDR of the same address family inside cidr"),
			invalid("spec.egress[0].to[0].ipBlock.except", "every except entry must be smaller than cidr: an except equal to cidr leaves nothing of the peer")),
		Entry("an except equal to cidr",
			egressTo(ipBlock("10.1.0.0/24", "10.1.0.0/24")),
			invalid("spec.egress[0].to[0].ipBlock.except", "every except entry must be smaller than cidr: an except equal to cidr leaves nothing of the peer")),
		Entry("an except of the other address family",
			egressTo(ipBlock("10.1.0.0/24", "2001:db8::/64")),
			invalid("spec.egress[0].to[0].ipBlock.except", "every except entry must be a CIDR of the same address family inside cidr")),
		Entry("an except that is not a CIDR",
			egressTo(ipBlock("10.1.0.0/24", "10.1.0.300/32")),
			invalid("spec.egress[0].to[0].ipBlock.except", "every except entry must be a CIDR of the same address family inside cidr")),
		Entry("port 0",
			ingressPorts(port(intstr.FromInt32(0))),
			invalid("spec.ingress[0].ports[0].port", "port must be between 1 and 65535")),
		Entry("port 65536",
			ingressPorts(port(intstr.FromInt32(80)), port(intstr.FromInt32(65536))),
			invalid("spec.ingress[0].ports[1].port", "port must be between 1 and 65535")),
		Entry("a port name with capitals and '_'",
			ingressPorts(port(intstr.FromString("Bad_Name"))),
			invalid("spec.ingress[0].ports[0].port", "a named port must be 1-15 lowercase letters, digits and '-', contain a letter, and not start or end with '-' or contain '--'")),
		Entry("a port name without a letter",
			ingressPorts(port(intstr.FromString("8080"))),
			invalid("spec.ingress[0].ports[0].port", "a named port must be 1-15 lowercase letters, digits and '-', contain a letter, and not start or end with '-' or contain '--'")),
		Entry("a port name with '--'",
			ingressPorts(port(intstr.FromString("web--tls"))),
			invalid("spec.ingress[0].ports[0].port", "a named port must be 1-15 lowercase letters, digits and '-', contain a letter, and not start or end with '-' or contain '--'")),
		Entry("a port name longer than 15 characters",
			ingressPorts(port(intstr.FromString("abcdefghijklmnop"))),
			metav1.StatusCause{
				Type:    metav1.CauseTypeTooLong,
				Field:   "spec.ingress[0].ports[0].port",
				Message: "Too long: may not be more than 15 bytes",
			},
			notChecked),
		Entry("endPort with a named port",
			ingressPorts(moatv1alpha1.Port{Port: ptr.To(intstr.FromString("http")), EndPort: ptr.To[int32](90)}),
			invalid("spec.ingress[0].ports[0].endPort", "endPort requires a numeric port")),
		Entry("endPort without a port",
			ingressPorts(moatv1alpha1.Port{EndPort: ptr.To[int32](90)}),
			invalid("spec.ingress[0].ports[0].endPort", "endPort requires a numeric port")),
		Entry("endPort below port",
			ingressPorts(moatv1alpha1.Port{Port: ptr.To(intstr.FromInt32(100)), EndPort: ptr.To[int32](90)}),
			invalid("spec.ingress[0].ports[0].endPort", "endPort must not be below port")),
		Entry("endPort above 65535",
			ingressPorts(moatv1alpha1.Port{Port: ptr.To(intstr.FromInt32(100)), EndPort: ptr.To[int32](65536)}),
			invalid("spec.ingress[0].ports[0].endPort", "65536: spec.ingress[0].ports[0].endPort in body should be less than or equal to 65535")),
		Entry("a protocol outside TCP, UDP and SCTP",
			ingressPorts(moatv1alpha1.Port{Protocol: ptr.To(corev1.Protocol("ICMP")), Port: ptr.To(intstr.FromInt32(80))}),
			metav1.StatusCause{
				Type:    metav1.CauseTypeFieldValueNotSupported,
				Field:   "spec.ingress[0].ports[0].protocol",
				Message: `Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"`,
			},
			notChecked),
		Entry("an empty from list",
			moatv1alpha1.NetworkAllowlistSpec{Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{}}}},
			invalid("spec.ingress[0].from", "0: spec.ingress[0].from in body should have at least 1 items")),
		Entry("an empty to list",
			moatv1alpha1.NetworkAllowlistSpec{Egress: []moatv1alpha1.EgressRule{{To: []moatv1alpha1.Peer{}}}},
			invalid("spec.egress[0].to", "0: spec.egress[0].to in body should have at least 1 items")),
		Entry("an invalid namespace name",
			moatv1alpha1.NetworkAllowlistSpec{Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{{Namespace: "Demo_Project"}}}}},
			invalid("spec.ingress[0].from[0].namespace", `"Demo_Project": spec.ingress[0].from[0].namespace in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'`)),
		Entry("an invalid Service name and namespace",
			egressTo(moatv1alpha1.Peer{Service: &moatv1alpha1.ServiceReference{Namespace: "demo_project", Name: "nginx.web"}}),
			invalid("spec.egress[0].to[0].service.name", `"nginx.web": spec.egress[0].to[0].service.name in body should match '^[a-z]([-a-z0-9]*[a-z0-9])?$'`),
			invalid("spec.egress[0].to[0].service.namespace", `"demo_project": spec.egress[0].to[0].service.namespace in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'`)),
		Entry("a Service name starting with a digit",
			egressTo(moatv1alpha1.Peer{Service: &moatv1alpha1.ServiceReference{Name: "1nginx"}}),
			invalid("spec.egress[0].to[0].service.name", `"1nginx": spec.egress[0].to[0].service.name in body should match '^[a-z]([-a-z0-9]*[a-z0-9])?$'`)),
	)

	It("defaults protocol to TCP and stores a valid allowlist as written", func() {
		spec := moatv1alpha1.NetworkAllowlistSpec{
			Ingress: []moatv1alpha1.IngressRule{{
				From: []moatv1alpha1.Peer{
					{Namespace: "demo-project-2"},
					ipBlock("192.168.1.1/32"),
				},
				Ports: []moatv1alpha1.Port{
					{Port: ptr.To(intstr.FromInt32(80))},
					{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromString("dns"))},
					{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(3000)), EndPort: ptr.To[int32](3010)},
				},
			}},
			Egress: []moatv1alpha1.EgressRule{{
				To: []moatv1alpha1.Peer{
					{Service: &moatv1alpha1.ServiceReference{Namespace: "demo-project-2", Name: "nginx"}},
					ipBlock("10.1.0.0/16", "10.1.1.0/24", "10.1.2.0/24"),
					ipBlock("2001:db8::/32", "2001:db8::/64"),
				},
				Ports: []moatv1alpha1.Port{{Port: ptr.To(intstr.FromInt32(80)), EndPort: ptr.To[int32](80)}},
			}},
		}
		Expect(k8sClient.Create(ctx, newAllowlist(namespace, "web", spec))).To(Succeed())

		want := spec.DeepCopy()
		want.Ingress[0].Ports[0].Protocol = ptr.To(corev1.ProtocolTCP)
		want.Egress[0].Ports[0].Protocol = ptr.To(corev1.ProtocolTCP)
		var stored moatv1alpha1.NetworkAllowlist
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "web"}, &stored)).To(Succeed())
		Expect(stored.Spec).To(Equal(*want))
	})
})
