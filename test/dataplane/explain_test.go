//go:build linux

package dataplane

import (
	"fmt"
	"maps"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/explain"
	"moat.dev/moat/policy"
)

// offlineState is the cluster state of one scenario step, as the step
// leaves it: which projects are isolated, their groups, the allowlists, the
// NetworkPolicies that are not moat's, and the Nodes.
type offlineState struct {
	isolated   []string
	groups     map[string]string
	allowlists []*v1alpha1.NetworkAllowlist
	policies   []*networkingv1.NetworkPolicy
	noNode2    bool
	// flood adds the flooding Node of flood_test.go.
	flood bool
}

// offlineConfig is the suite's moat serve configuration.
func offlineConfig() policy.Config {
	return policy.Config{ProjectLabel: projectLabel, DNSIPs: []netip.Addr{dnsIP}, AllowIngressFromNodes: true,
		MaxNodeAddressesPerNode: maxNodeAddressesPerNode}
}

// explainer builds the objects of the state, with moat's policies as moat
// renders them for the suite's configuration.
func (st offlineState) explainer(t *testing.T) *explain.Explainer {
	t.Helper()
	cfg := offlineConfig()
	objs := explain.Objects{Services: []*corev1.Service{nginxService()}}
	nodes := []*corev1.Node{offlineNode(node1Name, node1IP)}
	if !st.noNode2 {
		nodes = append(nodes, offlineNode(node2Name, node2IP))
	}
	if st.flood {
		addrs := make([]netip.Addr, floodAddresses)
		for i := range addrs {
			addrs[i] = floodAddr(i + 1)
		}
		nodes = append(nodes, offlineNode(floodNodeName, addrs...))
	}
	objs.Nodes = nodes
	for _, p := range worldPods {
		objs.Pods = append(objs.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name, Labels: p.labels},
			Spec:       corev1.PodSpec{NodeName: node1Name},
			Status:     corev1.PodStatus{PodIP: p.ip.String(), HostIP: node1IP.String()},
		})
	}
	objs.NetworkPolicies = append(objs.NetworkPolicies, st.policies...)
	models := map[string]policy.Model{}
	for _, name := range []string{projA, projB, projC} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelMetadataName: name}}}
		for _, iso := range st.isolated {
			if iso == name {
				ns.Labels[v1alpha1.IsolationLabel] = "true"
			}
		}
		if g, ok := st.groups[name]; ok {
			ns.Labels[projectLabel] = g
		}
		objs.Namespaces = append(objs.Namespaces, ns)
		var als []*v1alpha1.NetworkAllowlist
		for _, al := range st.allowlists {
			if al.Namespace == name {
				als = append(als, al)
			}
		}
		m, err := policy.Compute(policy.Input{Namespace: ns, Allowlists: als, NodeAddresses: policy.NodeAddresses(nodes, cfg)}, serviceLookup{}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		models[name] = m
		for _, np := range m.Render().Policies {
			objs.NetworkPolicies = append(objs.NetworkPolicies, &np)
		}
	}
	return &explain.Explainer{Index: explain.New(objs), Models: models}
}

// offlineNode is a Node whose InternalIPs are ips, as CreateNode writes it.
func offlineNode(name string, ips ...netip.Addr) *corev1.Node {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, ip := range ips {
		node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()})
	}
	return node
}

// serviceLookup finds the suite's only Service.
type serviceLookup struct{}

func (serviceLookup) Service(namespace, name string) (*corev1.Service, error) {
	if svc := nginxService(); svc.Namespace == namespace && svc.Name == name {
		return svc, nil
	}
	return nil, nil
}

// explainCell is moat explain's verdict on a cell: from the host's address
// to the target's address, port and protocol, as `moat explain SRC DST:PORT/PROTO`
// reads them.
func explainCell(t *testing.T, e *explain.Explainer, c Cell) explain.Answer {
	t.Helper()
	r, err := e.ExplainArgs(c.From.IP.String(), fmt.Sprintf("%s:%d/%s", c.To.Host.IP, c.To.Port, c.To.Proto))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answers) != 1 {
		t.Fatalf("%s: %d answers, want 1", c.Key(), len(r.Answers))
	}
	return r.Answers[0]
}

// TestExplainAgreesWithMatrices checks moat explain's verdict, offline, on
// every cell of every matrix that the data-plane suite observes on real
// packets (scenarios_test.go), in the state each scenario step leaves: the
// same matrices (matrices_test.go), so that where both exist, explain and
// the data plane agree. It needs neither root nor a cluster.
func TestExplainAgreesWithMatrices(t *testing.T) {
	s := &suite{}
	for _, p := range worldPods {
		*p.host(s) = &Host{Name: p.ns + "/" + p.name, IP: p.ip}
	}
	s.outside = &Host{Name: "outside", IP: outsideIP}
	s.dns = &Host{Name: "node-local-dns", IP: dnsIP}
	s.node2 = &Host{Name: node2Name, IP: node2IP}

	isoA := []string{projA}
	all := []string{projA, projB, projC}
	fromB := func(port int) *v1alpha1.NetworkAllowlist {
		return ingressFromNamespace(projA, projB, ports(corev1.ProtocolTCP, port)...)
	}
	within := &Host{Name: floodNodeName + "#8", IP: floodAddr(maxNodeAddressesPerNode)}
	beyond := &Host{Name: floodNodeName + "#9", IP: floodAddr(maxNodeAddressesPerNode + 1)}
	last := &Host{Name: floodNodeName + "#last", IP: floodAddr(floodAddresses)}
	allWS1 := maps.Clone(groups)
	allWS1[projC] = "ws1"
	steps := []struct {
		title string
		state offlineState
		cells []Cell
	}{
		{"reset: nothing isolated", offlineState{}, s.resetCells()},
		{"proj-a isolated", offlineState{isolated: isoA}, s.isolatedCells()},
		{"ingress from proj-b on TCP 80", offlineState{isolated: isoA, allowlists: []*v1alpha1.NetworkAllowlist{fromB(portHTTP)}}, s.fromProjBCells()},
		{"ingress from proj-b on TCP 8080", offlineState{isolated: isoA, allowlists: []*v1alpha1.NetworkAllowlist{fromB(portAlt)}}, s.fromProjBAltCells()},
		{"allowlist deleted", offlineState{isolated: isoA}, s.fromProjBDeletedCells()},
		{"egress still open", offlineState{isolated: isoA}, s.egressOpenCells()},
		{"egress to Service proj-b/nginx", offlineState{isolated: isoA, allowlists: []*v1alpha1.NetworkAllowlist{toNginx()}}, s.toNginxCells()},
		{"external CIDR in and out", offlineState{isolated: isoA, allowlists: []*v1alpha1.NetworkAllowlist{outsideAllowlist()}}, s.outsideCells()},
		{"DNS cache on every port", offlineState{isolated: isoA}, s.dnsOpenCells()},
		{"DNS only once egress is restricted", offlineState{isolated: isoA, allowlists: []*v1alpha1.NetworkAllowlist{toOutsideTLS()}}, s.dnsOnlyCells()},
		{"egress restricted", offlineState{isolated: isoA, allowlists: []*v1alpha1.NetworkAllowlist{toOutsideTLS()}}, s.egressRestrictedCells()},
		{"isolation off, allowlist kept", offlineState{allowlists: []*v1alpha1.NetworkAllowlist{toOutsideTLS()}}, s.isolationOffCells()},
		{"project groups", offlineState{isolated: all, groups: groups}, s.groupsCells()},
		{"proj-c moved to ws1", offlineState{isolated: all, groups: allWS1}, s.groupMovedCells()},
		{"tenant's wide policy refused", offlineState{isolated: isoA}, s.wideRefusedCells()},
		{"tenant's confined policy", offlineState{isolated: isoA, policies: []*networkingv1.NetworkPolicy{sameNamespaceWeb()}}, s.confinedCells()},
		{"the wide policy by the admin", offlineState{isolated: isoA, policies: []*networkingv1.NetworkPolicy{sameNamespaceWeb(), letProjCIn()}}, s.wideByAdminCells()},
		{"laundering: allowlist and policy", offlineState{isolated: isoA, allowlists: []*v1alpha1.NetworkAllowlist{temporaryFromProjC()}, policies: []*networkingv1.NetworkPolicy{launderedProjC()}}, s.launderedCells()},
		{"laundering: the stranded policy", offlineState{isolated: isoA, policies: []*networkingv1.NetworkPolicy{launderedProjC()}}, s.strandedCells()},
		{"laundering: clean-up", offlineState{isolated: isoA}, s.wideRefusedCells()},
		{"ingress from nodes", offlineState{isolated: isoA}, s.nodesCells()},
		{"node deleted", offlineState{isolated: isoA, noNode2: true}, s.nodeDeletedCells()},
		{"node back", offlineState{isolated: isoA}, s.nodeBackCells()},
		{"node flood, nothing isolated", offlineState{flood: true}, s.floodOpenCells(within, beyond, last)},
		{"node flood, proj-a isolated", offlineState{isolated: isoA, flood: true}, s.floodDenyCells()},
		{"node flood, moat-nodes-ingress", offlineState{isolated: isoA, flood: true}, s.floodNodesCells(within)},
		{"node flood, bounded", offlineState{isolated: isoA, flood: true}, s.floodBoundedCells(within, beyond, last)},
		{"node flood, the Node deleted", offlineState{isolated: isoA}, s.floodDeletedCells(within, beyond)},
	}
	cells := 0
	for _, step := range steps {
		e := step.state.explainer(t)
		for _, c := range step.cells {
			cells++
			if a := explainCell(t, e, c); a.Allowed != c.Want {
				t.Errorf("%s: %s: the data plane expects %s, moat explain says %s (egress %+v; ingress %+v)",
					step.title, c.Key(), verdict(c.Want), verdict(a.Allowed), a.Egress, a.Ingress)
			}
		}
	}
	t.Logf("%d cells of %d steps agree", cells, len(steps))
}
