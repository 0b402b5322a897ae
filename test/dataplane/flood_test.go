//go:build linux

package dataplane

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/controller"
	"moat.dev/moat/policy"
)

// The node flood of the issue "Fail closed under change and abuse" (case 1):
// with --allow-ingress-from-nodes, a kubelet may write thousands of addresses
// into its own Node's status. moat writes the deny (moat-default-ingress)
// inside the labelling request, on its own, and admits each Node's first
// --max-node-addresses-per-node addresses only, in moat-nodes-ingress.
const (
	floodNodeName = "dp-flood"
	// floodAddresses is how many InternalIPs the flooding Node reports.
	floodAddresses = 3000
	// maxNodeAddressesPerNode is the suite's --max-node-addresses-per-node
	// (moat's default, set explicitly so that the scenario does not depend
	// on it).
	maxNodeAddressesPerNode = 8
)

// floodAddr is the flooding Node's n-th InternalIP (n from 1), in
// floodPrefix: 10.251.0.1, 10.251.0.2, …
func floodAddr(n int) netip.Addr {
	a := floodPrefix.Addr().As4()
	binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])+uint32(n))
	return netip.AddrFrom4(a)
}

// floodHost adds a host whose address is the flooding Node's n-th
// InternalIP: a packet from it is a packet from that node's address n.
func (s *suite) floodHost(t *testing.T, n int) *Host {
	t.Helper()
	h, err := s.topo.AddHost(floodNodeName+"#"+strconv.Itoa(n), floodAddr(n))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (s *suite) nodeFlood(t *testing.T) {
	ctx, admin := s.ctx, s.cluster.Admin
	// Hosts at three of the flood's addresses: the last one within the
	// bound, the first one beyond it, and the last one.
	within := s.floodHost(t, maxNodeAddressesPerNode)
	beyond := s.floodHost(t, maxNodeAddressesPerNode+1)
	last := s.floodHost(t, floodAddresses)

	addrs := make([]netip.Addr, floodAddresses)
	for i := range addrs {
		addrs[i] = floodAddr(i + 1)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: floodNodeName}}
	t.Cleanup(func() {
		if err := admin.Delete(ctx, node); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting Node %s: %v", floodNodeName, err)
		}
	})
	if err := CreateNode(ctx, admin, floodNodeName, addrs...); err != nil {
		t.Fatal(err)
	}
	// moat has read the flood before the label: it reports the Node over
	// its bound. Without the Event, the matrices below still show what the
	// data plane does.
	note, err := s.waitForNodeEvent(floodNodeName, controller.EventNodeAddressesOverLimit)
	if err != nil {
		t.Errorf("no %s Event on Node %s: %v", controller.EventNodeAddressesOverLimit, floodNodeName, err)
		note = "none"
	}
	fmt.Fprintf(os.Stdout, "\n-- Node %s created with %d InternalIPs (%s … %s); moat's Event %s: %s\n",
		floodNodeName, floodAddresses, addrs[0], addrs[len(addrs)-1], controller.EventNodeAddressesOverLimit, note)
	s.step(t, fmt.Sprintf("nothing isolated, Node %s offers %d InternalIPs: its hosts reach proj-a (#n: the node's n-th address)", floodNodeName, floodAddresses), "", nil,
		s.floodOpenCells(within, beyond, last)...)

	// (a) The deny is stored when the label request returns, and other
	// projects are denied.
	var labelled string
	isolate := func() error {
		start := time.Now()
		if err := s.isolate(projA, true)(); err != nil {
			return err
		}
		took := time.Since(start)
		deny := &networkingv1.NetworkPolicy{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: projA, Name: policy.DefaultIngressPolicyName}, deny); err != nil {
			t.Errorf("%s is not stored when the label request returns (%s): %v", policy.DefaultIngressPolicyName, took.Round(time.Millisecond), err)
			return nil
		}
		if peers := ipBlockPeers(deny); len(peers) != 0 {
			t.Errorf("%s holds ipBlock peers, the deny must not depend on node addresses: %s", policy.DefaultIngressPolicyName, addrList(peers))
		}
		labelled = fmt.Sprintf("label request returned in %s with %s already stored", took.Round(time.Millisecond), policy.DefaultIngressPolicyName)
		return nil
	}
	s.step(t, "proj-a labelled isolated under the flood: other projects and the outside host are denied", "", isolate,
		s.floodDenyCells()...)
	if labelled != "" {
		fmt.Fprintf(os.Stdout, "-- %s\n", labelled)
	}
	// (b) The node addresses come in moat-nodes-ingress, right after the
	// deny. The deny is enforced now (the matrix above saw it), so a node
	// address that gets in is admitted by moat-nodes-ingress, enforced.
	s.step(t, fmt.Sprintf("then moat-nodes-ingress: %s and the flood's address #%d get in", node2Name, maxNodeAddressesPerNode), "", nil,
		s.floodNodesCells(within)...)
	// (c) With that policy enforced (the matrix above saw it admit #8, so
	// the enforcer holds a version rendered with the flood), the flood's
	// addresses beyond the bound stay out.
	s.step(t, fmt.Sprintf("proj-a isolated, Node %s bounded to its first %d addresses: #%d and #%d stay out", floodNodeName,
		maxNodeAddressesPerNode, maxNodeAddressesPerNode+1, floodAddresses), "", nil,
		s.floodBoundedCells(within, beyond, last)...)

	// The API view of the same: moat-nodes-ingress holds the nodes'
	// addresses, and no more than the bound from the flooding Node.
	nodes, err := s.nodesIngress(projA)
	if err != nil {
		t.Fatal(err)
	}
	var fromFlood []netip.Addr
	for _, a := range nodes {
		if floodPrefix.Contains(a) {
			fromFlood = append(fromFlood, a)
		}
	}
	fmt.Fprintf(os.Stdout, "-- %s in proj-a: %d addresses, %d of them from Node %s (%d offered): %s\n",
		policy.NodesIngressPolicyName, len(nodes), len(fromFlood), floodNodeName, floodAddresses, addrList(nodes))
	if want := addrs[:maxNodeAddressesPerNode]; !slices.Equal(fromFlood, want) {
		t.Errorf("%s admits %d addresses from Node %s (%s), want its first %d (%s)", policy.NodesIngressPolicyName,
			len(fromFlood), floodNodeName, addrList(fromFlood), maxNodeAddressesPerNode, addrList(want))
	}
	for _, a := range []netip.Addr{node1IP, node2IP} {
		if !slices.Contains(nodes, a) {
			t.Errorf("%s does not admit node address %s", policy.NodesIngressPolicyName, a)
		}
	}

	s.step(t, "Node "+floodNodeName+" deleted: its addresses are no longer admitted, "+node2Name+" still is", "", s.delete(node),
		s.floodDeletedCells(within, beyond)...)
}

// waitForNodeEvent waits for an Event with reason about the Node name (moat
// records it in the default namespace) and returns its note.
func (s *suite) waitForNodeEvent(name, reason string) (string, error) {
	var note string
	err := wait.PollUntilContextTimeout(s.ctx, 50*time.Millisecond, matrixDeadline, true, func(ctx context.Context) (bool, error) {
		list := &eventsv1.EventList{}
		if err := s.cluster.Admin.List(ctx, list, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.Reason == reason && e.Regarding.Kind == "Node" && e.Regarding.Name == name {
				note = e.Note
				return true, nil
			}
		}
		return false, nil
	})
	return note, err
}

// nodesIngress waits until moat-nodes-ingress exists in ns and returns the
// addresses it admits, sorted.
func (s *suite) nodesIngress(ns string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	err := wait.PollUntilContextTimeout(s.ctx, 50*time.Millisecond, matrixDeadline, true, func(ctx context.Context) (bool, error) {
		np := &networkingv1.NetworkPolicy{}
		err := s.cluster.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: policy.NodesIngressPolicyName}, np)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if np.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue {
			return false, fmt.Errorf("%s/%s is not moat's", ns, np.Name)
		}
		addrs = ipBlockPeers(np)
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s in %s: %w", policy.NodesIngressPolicyName, ns, err)
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	return addrs, nil
}

// ipBlockPeers returns the addresses of the ipBlock peers of np's ingress
// rules (moat writes node addresses as /32s; for a wider block, its first
// address).
func ipBlockPeers(np *networkingv1.NetworkPolicy) []netip.Addr {
	var out []netip.Addr
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.IPBlock == nil {
				continue
			}
			cidr := peer.IPBlock.CIDR
			if !strings.Contains(cidr, "/") {
				cidr += "/32"
			}
			if p, err := netip.ParsePrefix(cidr); err == nil {
				out = append(out, p.Addr())
			}
		}
	}
	return out
}

// addrList writes addresses for a message: all of them up to a dozen, else
// the first and last few and how many in all.
func addrList(addrs []netip.Addr) string {
	const most = 12
	words := func(as []netip.Addr) string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = a.String()
		}
		return strings.Join(out, " ")
	}
	if len(addrs) <= most {
		return "[" + words(addrs) + "]"
	}
	return fmt.Sprintf("[%s … %s] (%d in all)", words(addrs[:most-2]), words(addrs[len(addrs)-2:]), len(addrs))
}
