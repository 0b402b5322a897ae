// Package evaluator answers "is this packet allowed?" with an implementation
// that is not moat's: the policy engine of sigs.k8s.io/kube-network-policies
// v0.8.0, run in process. Tests use it as the independent judge of what moat's
// policies (NetworkPolicies and admin-tier objects) admit; it is never linked
// into moat's binaries.
//
// kube-network-policies evaluates a packet in an unexported method of its
// controller (the nfqueue path: it reads the first packet of a connection
// from the kernel). The controller is built here with informers that are never
// started: the objects under test are added to their stores directly, so no
// API server and no kernel are involved, and the verdict comes from the
// project's own code (evaluatePacket, reached through go:linkname with a
// struct of the same layout as its packet type).
package evaluator

import (
	"context"
	"fmt"
	"net"
	_ "unsafe" // go:linkname

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
	npainformers "sigs.k8s.io/network-policy-api/pkg/client/informers/externalversions"

	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

// packet mirrors networkpolicy.packet (v0.8.0, pkg/networkpolicy/packet.go)
// field for field; TestLayout pins the assumption by evaluating packets whose
// verdict depends on every field read.
type packet struct {
	id      uint32
	family  corev1.IPFamily
	srcIP   net.IP
	dstIP   net.IP
	proto   corev1.Protocol
	srcPort int
	dstPort int
	payload []byte
}

//go:linkname evaluatePacket sigs.k8s.io/kube-network-policies/pkg/networkpolicy.(*Controller).evaluatePacket
func evaluatePacket(c *networkpolicy.Controller, ctx context.Context, p packet) bool

// Objects is the cluster state a verdict is computed on.
type Objects struct {
	Namespaces      []corev1.Namespace
	Pods            []corev1.Pod
	Nodes           []corev1.Node
	NetworkPolicies []networkingv1.NetworkPolicy
	// Admin-tier objects; when both are empty the admin tier is off.
	AdminNetworkPolicies         []npav1alpha1.AdminNetworkPolicy
	BaselineAdminNetworkPolicies []npav1alpha1.BaselineAdminNetworkPolicy
}

// Evaluator holds one cluster state.
type Evaluator struct {
	c *networkpolicy.Controller
}

// unreachable is a client configuration that is never used to connect: the
// informers are not started and the controller's event sink stays idle.
var unreachable = &rest.Config{Host: "http://127.0.0.1:1"}

// New loads objs into a kube-network-policies controller.
func New(objs Objects) (*Evaluator, error) {
	client, err := kubernetes.NewForConfig(unreachable)
	if err != nil {
		return nil, err
	}
	npa, err := npaclient.NewForConfig(unreachable)
	if err != nil {
		return nil, err
	}
	f := informers.NewSharedInformerFactory(client, 0)
	nf := npainformers.NewSharedInformerFactory(npa, 0)
	npi, nsi, pi, noi := f.Networking().V1().NetworkPolicies(), f.Core().V1().Namespaces(), f.Core().V1().Pods(), f.Core().V1().Nodes()
	anpi, banpi := nf.Policy().V1alpha1().AdminNetworkPolicies(), nf.Policy().V1alpha1().BaselineAdminNetworkPolicies()
	admin := len(objs.AdminNetworkPolicies)+len(objs.BaselineAdminNetworkPolicies) > 0
	c, err := networkpolicy.NewController(client, npi, nsi, pi, noi, npa, anpi, banpi, networkpolicy.Config{
		AdminNetworkPolicy:         admin,
		BaselineAdminNetworkPolicy: admin,
		NodeName:                   "evaluator",
		// NRI stays enabled: v0.8.0 looks addresses that are no pod's up in
		// its NRI plugin (nil when disabled); the plugin is created, never run.
	})
	if err != nil {
		return nil, err
	}
	add := func(s cache.Store, o any) error { return s.Add(o) }
	for i := range objs.Namespaces {
		if err := add(nsi.Informer().GetStore(), &objs.Namespaces[i]); err != nil {
			return nil, err
		}
	}
	for i := range objs.Pods {
		if err := add(pi.Informer().GetStore(), &objs.Pods[i]); err != nil {
			return nil, err
		}
	}
	for i := range objs.Nodes {
		if err := add(noi.Informer().GetStore(), &objs.Nodes[i]); err != nil {
			return nil, err
		}
	}
	for i := range objs.NetworkPolicies {
		if err := add(npi.Informer().GetStore(), &objs.NetworkPolicies[i]); err != nil {
			return nil, err
		}
	}
	for i := range objs.AdminNetworkPolicies {
		if err := add(anpi.Informer().GetStore(), &objs.AdminNetworkPolicies[i]); err != nil {
			return nil, err
		}
	}
	for i := range objs.BaselineAdminNetworkPolicies {
		if err := add(banpi.Informer().GetStore(), &objs.BaselineAdminNetworkPolicies[i]); err != nil {
			return nil, err
		}
	}
	return &Evaluator{c: c}, nil
}

// Allowed reports whether a new connection from src to dst:port/proto is
// admitted, egress of the source and ingress of the destination together.
// Addresses that are a pod's IP stand for that pod; others are outside the
// pod network.
func (e *Evaluator) Allowed(src, dst string, port int, proto corev1.Protocol) (bool, error) {
	s, d := net.ParseIP(src), net.ParseIP(dst)
	if s == nil || d == nil {
		return false, fmt.Errorf("evaluator: %q or %q is not an IP address", src, dst)
	}
	fam := corev1.IPv4Protocol
	if s.To4() == nil {
		fam = corev1.IPv6Protocol
	}
	return evaluatePacket(e.c, context.Background(), packet{id: 1, payload: nil, family: fam, srcIP: s, dstIP: d, proto: proto, srcPort: 40000, dstPort: port}), nil
}
