// Package explain answers "can A reach B on this port, and why?" from the
// objects of a cluster: Namespaces, Pods, Services, Nodes and every
// NetworkPolicy (moat's and tenants'), and the admin-tier objects when the
// cluster enforces with them (admintier.go). Its engine evaluates NetworkPolicy
// semantics completely (every policy selecting either pod, policyTypes,
// named ports, ipBlock excepts, endPort), on both sides of a connection:
// the egress of the source and the ingress of the destination. On top of the
// verdict, Explainer names moat's reasons from policy.Model (the isolation,
// the flag, the allowlist and its rule) and, for what is denied, the
// NetworkAllowlist that would admit it and who must apply it.
//
// The package is pure: no client, no I/O. Objects are indexed once (New), so
// that one answer costs the policies of the two namespaces involved, whatever
// the size of the cluster.
package explain

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"moat.dev/moat/api/v1alpha1"
)

// Objects is the cluster state an answer is computed on. Nil entries are
// ignored.
type Objects struct {
	Namespaces      []*corev1.Namespace
	Pods            []*corev1.Pod
	Services        []*corev1.Service
	Nodes           []*corev1.Node
	NetworkPolicies []*networkingv1.NetworkPolicy
	// The admin tier (moat's --enforcement=adminnetworkpolicy or
	// clusternetworkpolicy, and cluster admins' own): none, when only
	// NetworkPolicies enforce.
	AdminNetworkPolicies         []*npav1alpha1.AdminNetworkPolicy
	BaselineAdminNetworkPolicies []*npav1alpha1.BaselineAdminNetworkPolicy
	ClusterNetworkPolicies       []*npav1beta1.ClusterNetworkPolicy
}

// Index is Objects indexed for answers.
type Index struct {
	namespaces map[string]*corev1.Namespace
	pods       map[string][]*corev1.Pod // by namespace, in input order
	podByName  map[types.NamespacedName]*corev1.Pod
	podByIP    map[netip.Addr]*corev1.Pod
	services   map[types.NamespacedName]*corev1.Service
	nodes      map[string]*corev1.Node
	nodeByIP   map[netip.Addr]*corev1.Node
	policies   map[string][]*compiled // by namespace, sorted by name
	admin      tierIndex
	baseline   tierIndex
}

// compiled is a NetworkPolicy with its pod selector parsed and its policy
// types defaulted as the API server defaults them.
type compiled struct {
	np       *networkingv1.NetworkPolicy
	selector labels.Selector // nil: the selector does not parse, selects nothing
	ingress  bool
	egress   bool
	managed  bool // written by moat
}

// New indexes objs.
func New(objs Objects) *Index {
	x := &Index{
		namespaces: map[string]*corev1.Namespace{},
		pods:       map[string][]*corev1.Pod{},
		podByName:  map[types.NamespacedName]*corev1.Pod{},
		podByIP:    map[netip.Addr]*corev1.Pod{},
		services:   map[types.NamespacedName]*corev1.Service{},
		nodes:      map[string]*corev1.Node{},
		nodeByIP:   map[netip.Addr]*corev1.Node{},
		policies:   map[string][]*compiled{},
	}
	for _, ns := range objs.Namespaces {
		if ns != nil {
			x.namespaces[ns.Name] = ns
		}
	}
	for _, p := range objs.Pods {
		x.addPod(p)
	}
	for _, s := range objs.Services {
		if s != nil {
			x.services[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
		}
	}
	for _, n := range objs.Nodes {
		x.addNode(n)
	}
	for _, np := range objs.NetworkPolicies {
		if np != nil {
			x.policies[np.Namespace] = append(x.policies[np.Namespace], compile(np))
		}
	}
	for _, list := range x.policies {
		slices.SortStableFunc(list, func(a, b *compiled) int { return cmp.Compare(a.np.Name, b.np.Name) })
	}
	x.admin, x.baseline = compileTier(objs)
	return x
}

func (x *Index) addPod(p *corev1.Pod) {
	if p == nil {
		return
	}
	x.pods[p.Namespace] = append(x.pods[p.Namespace], p)
	x.podByName[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
	if p.Spec.HostNetwork {
		return // its address is its node's
	}
	for _, ip := range podIPs(p) {
		x.podByIP[ip] = p
	}
}

func (x *Index) addNode(n *corev1.Node) {
	if n == nil {
		return
	}
	x.nodes[n.Name] = n
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			x.nodeByIP[ip] = n
		}
	}
}

// podIPs are the addresses of a pod: status.podIPs, else status.podIP.
func podIPs(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out = append(out, a)
		}
	}
	if a, err := netip.ParseAddr(p.Status.PodIP); err == nil && !slices.Contains(out, a) {
		out = append(out, a)
	}
	return out
}

func compile(np *networkingv1.NetworkPolicy) *compiled {
	c := &compiled{np: np, managed: np.Labels[v1alpha1.ManagedByLabel] == v1alpha1.ManagedByValue}
	if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err == nil {
		c.selector = sel
	}
	if len(np.Spec.PolicyTypes) == 0 {
		// The API server's default: Ingress always, Egress when there are
		// egress rules.
		c.ingress, c.egress = true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			c.ingress = true
		case networkingv1.PolicyTypeEgress:
			c.egress = true
		}
	}
	return c
}

// Namespace returns the named namespace, or nil.
func (x *Index) Namespace(name string) *corev1.Namespace { return x.namespaces[name] }

// Service returns the named Service, or nil.
func (x *Index) Service(namespace, name string) *corev1.Service {
	return x.services[types.NamespacedName{Namespace: namespace, Name: name}]
}

// NetworkPolicies returns the policies of a namespace, sorted by name.
func (x *Index) NetworkPolicies(namespace string) []*networkingv1.NetworkPolicy {
	list := x.policies[namespace]
	out := make([]*networkingv1.NetworkPolicy, len(list))
	for i, c := range list {
		out[i] = c.np
	}
	return out
}
