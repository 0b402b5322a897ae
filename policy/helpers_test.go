package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

// serviceMap is an in-memory Services keyed by "namespace/name".
type serviceMap map[string]*corev1.Service

func (m serviceMap) Service(namespace, name string) (*corev1.Service, error) {
	return m[namespace+"/"+name], nil
}

func servicesOf(svcs ...*corev1.Service) serviceMap {
	m := serviceMap{}
	for _, s := range svcs {
		m[s.Namespace+"/"+s.Name] = s
	}
	return m
}

// failingServices fails every lookup.
type failingServices struct{}

var errLookup = errors.New("cache not synced")

func (failingServices) Service(string, string) (*corev1.Service, error) { return nil, errLookup }

// countingServices counts lookups.
type countingServices struct {
	serviceMap
	calls int
}

func (c *countingServices) Service(namespace, name string) (*corev1.Service, error) {
	c.calls++
	return c.serviceMap.Service(namespace, name)
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func isolatedNamespace(name string) *corev1.Namespace {
	return namespace(name, map[string]string{v1alpha1.IsolationLabel: "true", v1alpha1.NamespaceNameLabel: name})
}

func allowlist(name string, spec v1alpha1.NetworkAllowlistSpec) *v1alpha1.NetworkAllowlist {
	return &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo-project-1", UID: types.UID("uid-" + name)},
		Spec:       spec,
	}
}

func service(ns, name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}
}

func svcPort(name string, protocol corev1.Protocol, port int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: protocol, Port: port, TargetPort: target}
}

func kubeDNS() *corev1.Service {
	return service("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"},
		svcPort("dns", corev1.ProtocolUDP, 53, intstr.FromInt32(53)),
		svcPort("dns-tcp", corev1.ProtocolTCP, 53, intstr.FromInt32(53)),
		svcPort("metrics", corev1.ProtocolTCP, 9153, intstr.FromInt32(9153)),
	)
}

func nginx() *corev1.Service {
	return service("demo-project-2", "nginx", map[string]string{"app": "nginx"},
		svcPort("http", corev1.ProtocolTCP, 80, intstr.FromInt32(8080)))
}

// Allowlist building blocks.

func nsRef(name string) v1alpha1.Peer { return v1alpha1.Peer{Namespace: name} }

func svcRef(ns, name string) v1alpha1.Peer {
	return v1alpha1.Peer{Service: &v1alpha1.ServiceReference{Namespace: ns, Name: name}}
}

func cidrRef(cidr string, except ...string) v1alpha1.Peer {
	return v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: cidr, Except: except}}
}

func port(protocol corev1.Protocol, p int) v1alpha1.Port {
	return v1alpha1.Port{Protocol: ptr.To(protocol), Port: ptr.To(intstr.FromInt(p))}
}

func namedPort(protocol corev1.Protocol, name string) v1alpha1.Port {
	return v1alpha1.Port{Protocol: ptr.To(protocol), Port: ptr.To(intstr.FromString(name))}
}

func ingress(from []v1alpha1.Peer, ports ...v1alpha1.Port) v1alpha1.IngressRule {
	return v1alpha1.IngressRule{From: from, Ports: ports}
}

func egress(to []v1alpha1.Peer, ports ...v1alpha1.Port) v1alpha1.EgressRule {
	return v1alpha1.EgressRule{To: to, Ports: ports}
}

func peers(p ...v1alpha1.Peer) []v1alpha1.Peer { return p }

// Expected NetworkPolicy building blocks.

func npPort(protocol corev1.Protocol, p int) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(protocol), Port: ptr.To(intstr.FromInt(p))}
}

func npNamedPort(protocol corev1.Protocol, name string) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(protocol), Port: ptr.To(intstr.FromString(name))}
}

func npPorts(p ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return p }

func npSame() networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}
}

func npNamespace(name string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"kubernetes.io/metadata.name": name},
	}}
}

func npPods(ns string, selector map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: selector},
	}
}

func npCIDR(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func npPeers(p ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return p }

func typeMeta() metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}
}

func managed() map[string]string {
	return map[string]string{"app.kubernetes.io/managed-by": "moat"}
}

func wantDefaultIngress(ns string, from ...networkingv1.NetworkPolicyPeer) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta(),
		ObjectMeta: metav1.ObjectMeta{Name: "moat-default-ingress", Namespace: ns, Labels: managed()},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: append(npPeers(npSame()), from...)}},
		},
	}
}

// wantExtension expects moat-group-ingress or moat-nodes-ingress admitting
// from.
func wantExtension(ns, name string, from ...networkingv1.NetworkPolicyPeer) networkingv1.NetworkPolicy {
	np := wantDefaultIngress(ns)
	np.Name = name
	np.Spec.Ingress[0].From = from
	return np
}

// wantDefaultEgress expects the default egress policy; dns is nil when the
// DNS exception is off.
func wantDefaultEgress(ns string, dns *networkingv1.NetworkPolicyEgressRule) networkingv1.NetworkPolicy {
	np := networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta(),
		ObjectMeta: metav1.ObjectMeta{Name: "moat-default-egress", Namespace: ns, Labels: managed()},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: npPeers(npSame())}},
		},
	}
	if dns != nil {
		np.Spec.Egress = append(np.Spec.Egress, *dns)
	}
	return np
}

// kubeDNSRule is the DNS rule rendered from kubeDNS().
func kubeDNSRule() *networkingv1.NetworkPolicyEgressRule {
	return &networkingv1.NetworkPolicyEgressRule{
		To:    npPeers(npPods("kube-system", map[string]string{"k8s-app": "kube-dns"})),
		Ports: npPorts(npPort(corev1.ProtocolUDP, 53), npPort(corev1.ProtocolTCP, 53)),
	}
}

// fallbackDNSRule is the DNS rule rendered when the DNS Service is unusable.
func fallbackDNSRule(ns string) *networkingv1.NetworkPolicyEgressRule {
	return &networkingv1.NetworkPolicyEgressRule{
		To:    npPeers(npPods(ns, map[string]string{"k8s-app": "kube-dns"})),
		Ports: npPorts(npPort(corev1.ProtocolUDP, 53), npPort(corev1.ProtocolTCP, 53)),
	}
}

func ownedBy(name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{
		APIVersion:         "moat.dev/v1alpha1",
		Kind:               "NetworkAllowlist",
		Name:               name,
		UID:                types.UID("uid-" + name),
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}}
}

// wantAllowlist expects the policy of allowlist name in demo-project-1.
func wantAllowlist(name string, in []networkingv1.NetworkPolicyIngressRule, eg []networkingv1.NetworkPolicyEgressRule, policyTypes ...networkingv1.PolicyType) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		TypeMeta: typeMeta(),
		ObjectMeta: metav1.ObjectMeta{
			Name:            "moat-allowlist-" + name,
			Namespace:       "demo-project-1",
			Labels:          map[string]string{"app.kubernetes.io/managed-by": "moat", "moat.dev/allowlist": name},
			OwnerReferences: ownedBy(name),
		},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: policyTypes, Ingress: in, Egress: eg},
	}
}

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	both        = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
)

func dnsConfig() Config {
	return Config{DNSService: ptr.To(DefaultDNSService)}
}

func applied(name string) AllowlistResult {
	return AllowlistResult{Policies: []string{"moat-allowlist-" + name}}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
