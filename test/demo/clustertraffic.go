package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// The cluster-traffic scenarios run with moat serve --project-label
// kubesphere.io/workspace --dns-ips 169.254.25.10 (see the Makefile).
const (
	workspaceLabel = "kubesphere.io/workspace"
	workspace      = "demo-workspace"
	workspaceNS1   = "demo-workspace-web"
	workspaceNS2   = "demo-workspace-db"
	nodeLocalDNS   = "169.254.25.10"
)

// workspaceProjects is a KubeSphere workspace of two namespaces: both are
// isolated and admit each other, not demo-project-2.
func (d *demo) workspaceProjects(ctx context.Context) error {
	d.section("A workspace of two namespaces",
		"KubeSphere isolates a workspace: its namespaces carry kubesphere.io/workspace=<name>",
		"and reach each other. With --project-label kubesphere.io/workspace, moat admits the",
		"namespaces of the same workspace into every isolated namespace of it; only admins",
		"and the workspace controller may set that label.")
	for _, name := range []string{workspaceNS1, workspaceNS2} {
		d.command("kubectl create namespace %s && kubectl label namespace %s %s=%s %s=true", name, name, workspaceLabel, workspace, moatv1alpha1.IsolationLabel)
		err := d.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{workspaceLabel: workspace, moatv1alpha1.IsolationLabel: "true"}}})
		d.answer(err, d.warnings.take())
		if err != nil {
			return err
		}
	}
	// The group extends the deny in a policy of its own.
	var group, deny *networkingv1.NetworkPolicy
	inTime := d.waitFor(ctx, policyDeadline, func() bool {
		nps := d.list(ctx, workspaceNS1)
		group, deny = find(nps, policy.GroupIngressPolicyName), find(nps, policy.DefaultIngressPolicyName)
		return deny != nil && group != nil && admitsLabels(group, map[string]string{workspaceLabel: workspace})
	})
	d.policies(workspaceNS1, d.list(ctx, workspaceNS1))
	d.check(inTime, "within %v %s admits every namespace labelled %s=%s, %s included (%s, beside the deny %s)", policyDeadline, workspaceNS1,
		workspaceLabel, workspace, workspaceNS2, policy.GroupIngressPolicyName, policy.DefaultIngressPolicyName)
	d.check(group != nil && deny != nil && !admitsNamespace(group, project2) && !admitsNamespace(deny, project2) &&
		!admitsLabels(group, map[string]string{moatv1alpha1.NamespaceNameLabel: project2}) && !admitsLabels(deny, map[string]string{moatv1alpha1.NamespaceNameLabel: project2}),
		"neither admits %s, which is not in the workspace", project2)
	return nil
}

// nodeLocalDNSAndAPIServer restricts the egress of a workspace namespace to
// the API server: DNS stays open to the node-local cache on port 53 only.
func (d *demo) nodeLocalDNSAndAPIServer(ctx context.Context) error {
	d.section("An operator reaches the API server; DNS goes through the node-local cache",
		"An operator in a project that restricts egress needs the Kubernetes API server.",
		"default/kubernetes has no selector, so it cannot be a Service peer; the peer",
		"kubernetesAPI: {} becomes the addresses of its EndpointSlices, followed live.",
		"With --dns-ips 169.254.25.10 (NodeLocal DNSCache), DNS egress names that address",
		"on UDP and TCP 53 next to the DNS Service's pods, and no other port of them.")
	al := &moatv1alpha1.NetworkAllowlist{
		TypeMeta:   metav1.TypeMeta{APIVersion: moatv1alpha1.GroupVersion.String(), Kind: "NetworkAllowlist"},
		ObjectMeta: metav1.ObjectMeta{Namespace: workspaceNS1, Name: "operator"},
		Spec: moatv1alpha1.NetworkAllowlistSpec{Egress: []moatv1alpha1.EgressRule{{
			To: []moatv1alpha1.Peer{{KubernetesAPI: &moatv1alpha1.KubernetesAPIPeer{}}},
		}}},
	}
	d.command("kubectl apply -f - <<EOF")
	d.object(al)
	err := d.c.Create(ctx, al)
	d.answer(err, d.warnings.take())
	if !d.check(err == nil, "the server accepts the allowlist") {
		return nil
	}
	var endpointSlices discoveryv1.EndpointSliceList
	if err := d.c.List(ctx, &endpointSlices, client.InNamespace(policy.APIServerNamespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: policy.APIServerName}); err != nil {
		return fmt.Errorf("listing the API server's EndpointSlices: %w", err)
	}
	var want []string
	for _, s := range endpointSlices.Items {
		if !policy.IsAPIServerEndpointSlice(&s) {
			continue
		}
		for _, ep := range s.Endpoints {
			for _, a := range ep.Addresses {
				addr := netip.MustParseAddr(a)
				want = append(want, netip.PrefixFrom(addr, addr.BitLen()).String())
			}
		}
	}
	var nps []networkingv1.NetworkPolicy
	inTime := d.waitFor(ctx, policyDeadline, func() bool {
		nps = d.list(ctx, workspaceNS1)
		op := find(nps, policy.PolicyName("operator"))
		return op != nil && len(want) > 0 && slices.Equal(egressCIDRs(op), want) && hasDNSCache(find(nps, policy.DefaultEgressPolicyName))
	})
	d.policies(workspaceNS1, nps)
	d.check(inTime, "within %v the operator may reach the API server at %v, on the EndpointSlice's port", policyDeadline, want)
	d.check(hasDNSCache(find(nps, policy.DefaultEgressPolicyName)), "the DNS rule of %s names %s/32 on UDP and TCP 53", policy.DefaultEgressPolicyName, nodeLocalDNS)
	return nil
}

// admitsLabels reports whether an ingress peer selects namespaces by
// exactly these labels.
func admitsLabels(np *networkingv1.NetworkPolicy, labels map[string]string) bool {
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.NamespaceSelector != nil && peer.PodSelector == nil && sameLabels(peer.NamespaceSelector.MatchLabels, labels) {
				return true
			}
		}
	}
	return false
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// egressCIDRs lists the ipBlock CIDRs of a policy's egress rules, in order.
func egressCIDRs(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, rule := range np.Spec.Egress {
		for _, peer := range rule.To {
			if peer.IPBlock != nil {
				out = append(out, peer.IPBlock.CIDR)
			}
		}
	}
	return out
}

// hasDNSCache reports whether a rule of the default egress policy names the
// node-local DNS cache on exactly UDP and TCP 53.
func hasDNSCache(np *networkingv1.NetworkPolicy) bool {
	if np == nil {
		return false
	}
	for _, rule := range np.Spec.Egress {
		cached := slices.ContainsFunc(rule.To, func(p networkingv1.NetworkPolicyPeer) bool {
			return p.IPBlock != nil && p.IPBlock.CIDR == nodeLocalDNS+"/32"
		})
		var ports []string
		for _, p := range rule.Ports {
			if p.Protocol != nil && p.Port != nil {
				ports = append(ports, fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String()))
			}
		}
		slices.Sort(ports)
		if cached && slices.Equal(ports, []string{"TCP/53", "UDP/53"}) {
			return true
		}
	}
	return false
}
