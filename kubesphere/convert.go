package kubesphere

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/validation"
)

// Names of the allowlists that Convert adds besides the converted
// NamespaceNetworkPolicies (which keep their names).
const (
	// WorkspaceAllowlistName admits the other namespaces of the workspace
	// into a namespace isolated at the workspace level.
	WorkspaceAllowlistName = "kubesphere-workspace"
	// DNSAllowlistName admits the node-local DNS cache that KubeSphere
	// admits in every namespace whose egress is restricted.
	DNSAllowlistName = "kubesphere-nodelocaldns"
)

// NodeLocalDNSIP is the address of the node-local DNS cache that KubeSphere's
// controller keeps reachable (port 53, TCP and UDP) once a project restricts
// egress.
const NodeLocalDNSIP = "169.254.25.10"

// Severity says whether a problem kept something from being carried over.
type Severity string

const (
	// SeverityError: something KubeSphere allowed (or meant to allow) is not
	// in the output.
	SeverityError Severity = "error"
	// SeverityWarning: carried over, but check it (a difference in meaning
	// or a step to do by hand).
	SeverityWarning Severity = "warning"
)

// ObjectRef names an input object.
type ObjectRef struct {
	Kind, Namespace, Name string
}

// String formats the reference as KIND/NAMESPACE/NAME or KIND/NAME.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Problem is something that could not be carried over as it is, and why.
type Problem struct {
	// Origin is where the object was read (a file name or "<cluster>");
	// Convert leaves it empty, see Reader.Locate.
	Origin   string
	Object   ObjectRef
	Field    string // field path in the input object; empty for the whole object
	Message  string
	Severity Severity
}

// Input is the KubeSphere state to convert.
type Input struct {
	Namespaces []*corev1.Namespace
	Services   []*corev1.Service
	Nodes      []*corev1.Node
	Policies   []*NamespaceNetworkPolicy
	Workspaces []Workspace
}

// Result is the moat state that lets the same traffic through. Every object
// in it passes moat's validation (validation.ValidateNamespace and
// ValidateNamespaceProtection, validation.ValidateNetworkAllowlist) with the
// configuration given to Convert; what would not is left out and reported.
type Result struct {
	// Namespaces to label moat.dev/isolated=true: each holds only its name
	// and that label, to be applied as a patch.
	Namespaces []*corev1.Namespace
	// Allowlists, sorted by namespace and name.
	Allowlists []*v1alpha1.NetworkAllowlist
	// Problems, in input order.
	Problems []Problem
}

// Errors counts the problems of SeverityError.
func (r *Result) Errors() int {
	n := 0
	for _, p := range r.Problems {
		if p.Severity == SeverityError {
			n++
		}
	}
	return n
}

// isolation is how KubeSphere isolates a namespace.
type isolation int

const (
	notIsolated isolation = iota
	namespaceIsolated
	workspaceIsolated
)

// converter holds the lookups of one Convert call.
type converter struct {
	in         Input
	cfg        validation.Config
	namespaces map[string]*corev1.Namespace
	services   map[string]*corev1.Service
	workspaces map[string]Workspace
	result     Result
}

// Convert converts KubeSphere's isolation switches, workspace isolation and
// NamespaceNetworkPolicies into moat objects, following what KubeSphere's
// network controller does with them. The objects are checked with moat's
// validation rules under cfg (the configuration of the moat that will run
// them): a peer or port that moat refuses is left out (a rule left without
// ports, which would admit every port, goes with it), and so is an object
// that still fails, each with an error at the KubeSphere field it came from.
func Convert(in Input, cfg validation.Config) Result {
	c := &converter{
		in:         in,
		cfg:        cfg,
		namespaces: map[string]*corev1.Namespace{},
		services:   map[string]*corev1.Service{},
		workspaces: map[string]Workspace{},
	}
	for _, ns := range in.Namespaces {
		if ns != nil {
			c.namespaces[ns.Name] = ns
		}
	}
	for _, svc := range in.Services {
		if svc != nil {
			c.services[svc.Namespace+"/"+svc.Name] = svc
		}
	}
	for _, ws := range in.Workspaces {
		c.workspaces[ws.Name] = ws
	}

	isolated := map[string]isolation{}
	for _, name := range sortedKeys(c.namespaces) {
		ns := c.namespaces[name]
		mode := c.isolationOf(ns)
		isolated[name] = mode
		if mode == notIsolated {
			continue
		}
		c.isolate(name)
		if mode == workspaceIsolated {
			c.workspaceAllowlist(ns)
		}
	}

	egressRestricted := map[string]bool{}
	for _, np := range c.sortedPolicies() {
		ref := ObjectRef{Kind: NamespaceNetworkPolicyKind.Kind, Namespace: np.Namespace, Name: np.Name}
		switch mode, known := isolated[np.Namespace]; {
		case !known:
			c.problem(ref, "", SeverityWarning, fmt.Sprintf(
				"namespace %s is not in the input, so whether KubeSphere isolates it is unknown: the policy is converted; "+
					"if the project is isolated, also run: kubectl label namespace %s %s=true", np.Namespace, np.Namespace, v1alpha1.IsolationLabel))
		case mode == notIsolated:
			c.problem(ref, "", SeverityWarning, fmt.Sprintf(
				"not in force: KubeSphere deletes the NamespaceNetworkPolicies of namespace %s, whose isolation is off; nothing to carry over", np.Namespace))
			continue
		case mode == workspaceIsolated:
			c.problem(ref, "", SeverityWarning, fmt.Sprintf(
				"not in force: namespace %s is isolated at the workspace level, where KubeSphere deletes its NamespaceNetworkPolicies; nothing to carry over", np.Namespace))
			continue
		}
		al, egress := c.convertPolicy(np, ref)
		if al != nil {
			c.emit(al, ref)
		}
		if egress {
			egressRestricted[np.Namespace] = true
		}
	}
	for _, name := range sortedKeys(egressRestricted) {
		c.emit(dnsAllowlist(name), ObjectRef{Kind: "Namespace", Name: name})
	}
	c.nodeProblems()

	sort.SliceStable(c.result.Allowlists, func(i, j int) bool {
		a, b := c.result.Allowlists[i], c.result.Allowlists[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return c.result
}

// isolate outputs the Namespace patch that isolates name, unless moat
// refuses it (a protected namespace).
func (c *converter) isolate(name string) {
	ns := &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.IsolationLabel: v1alpha1.IsolationOn}},
	}
	errs := append(validation.ValidateNamespace(ns), validation.ValidateNamespaceProtection(ns, c.cfg)...)
	for _, e := range errs {
		c.problem(ObjectRef{Kind: "Namespace", Name: name}, "", SeverityError, fmt.Sprintf(
			"isolated in KubeSphere, but moat refuses the label that would isolate it (%s: %s): not carried over", e.Field, e.ErrorBody()))
	}
	if len(errs) == 0 {
		c.result.Namespaces = append(c.result.Namespaces, ns)
	}
}

// emit outputs al, converted from the object from, when it passes moat's
// validation; otherwise it reports why and leaves it out.
func (c *converter) emit(al *v1alpha1.NetworkAllowlist, from ObjectRef) {
	// Its warnings are those of its peers, which convertPeer reported at
	// the fields they came from.
	errs, _ := validation.ValidateNetworkAllowlist(al, c.cfg, nil)
	for _, e := range errs {
		c.problem(from, "", SeverityError, fmt.Sprintf(
			"converted to NetworkAllowlist %s/%s, which moat refuses (%s: %s): the allowlist is not in the output", al.Namespace, al.Name, e.Field, e.ErrorBody()))
	}
	if len(errs) == 0 {
		c.result.Allowlists = append(c.result.Allowlists, al)
	}
}

// isolationOf says how KubeSphere's controller isolates ns. It handles only
// namespaces of a workspace; the annotation wins over workspace isolation.
func (c *converter) isolationOf(ns *corev1.Namespace) isolation {
	ref := ObjectRef{Kind: "Namespace", Name: ns.Name}
	annotated := ns.Annotations[IsolateAnnotation] == IsolateEnabled
	if v, ok := ns.Annotations[IsolateAnnotation]; ok && !annotated {
		c.problem(ref, "metadata.annotations["+IsolateAnnotation+"]", SeverityWarning, fmt.Sprintf(
			"value %q does not turn isolation on (only %q does): not isolated", v, IsolateEnabled))
	}
	workspace := ns.Labels[WorkspaceLabel]
	if workspace == "" {
		if annotated {
			c.problem(ref, "metadata.labels["+WorkspaceLabel+"]", SeverityWarning,
				"KubeSphere's controller ignores namespaces outside a workspace, so this one is not isolated although annotated: "+
					"not carried over; to isolate it with moat, run: kubectl label namespace "+ns.Name+" "+v1alpha1.IsolationLabel+"=true")
		}
		return notIsolated
	}
	if annotated {
		return namespaceIsolated
	}
	if ws, ok := c.workspaces[workspace]; ok && ws.NetworkIsolation {
		return workspaceIsolated
	}
	return notIsolated
}

// workspaceAllowlist admits the other namespaces of ns's workspace, as
// KubeSphere's workspace isolation does.
func (c *converter) workspaceAllowlist(ns *corev1.Namespace) {
	workspace := ns.Labels[WorkspaceLabel]
	var peers []v1alpha1.Peer
	for _, name := range sortedKeys(c.namespaces) {
		if name != ns.Name && c.namespaces[name].Labels[WorkspaceLabel] == workspace {
			peers = append(peers, v1alpha1.Peer{Namespace: name})
		}
	}
	c.problem(ObjectRef{Kind: "Namespace", Name: ns.Name}, "", SeverityWarning, fmt.Sprintf(
		"isolated at the workspace level (workspace %s): moat admits the %d other namespaces of the workspace found in the input by name; "+
			"namespaces that join the workspace later must be added to allowlist %s", workspace, len(peers), WorkspaceAllowlistName))
	// A rule holds at most v1alpha1.MaxPeers peers: a large workspace takes
	// several rules.
	var rules []v1alpha1.IngressRule
	for chunk := range slices.Chunk(peers, v1alpha1.MaxPeers) {
		rules = append(rules, v1alpha1.IngressRule{From: chunk})
	}
	if len(rules) > 0 {
		c.emit(newAllowlist(ns.Name, WorkspaceAllowlistName, v1alpha1.NetworkAllowlistSpec{Ingress: rules}), ObjectRef{Kind: "Namespace", Name: ns.Name})
	}
}

// convertPolicy converts one NamespaceNetworkPolicy. It returns nil when
// nothing of it carries over, and whether it restricts egress in
// KubeSphere (it has an egress rule).
func (c *converter) convertPolicy(np *NamespaceNetworkPolicy, ref ObjectRef) (*v1alpha1.NetworkAllowlist, bool) {
	spec := field.NewPath("spec")
	var out v1alpha1.NetworkAllowlistSpec
	for i, rule := range np.Spec.Ingress {
		path := spec.Child("ingress").Index(i)
		if len(rule.From) == 0 {
			c.problem(ref, path.Child("from").String(), SeverityError,
				"an ingress rule without peers admits every source in KubeSphere; a moat allowlist names its sources: "+
					"list the projects (namespace peers) or addresses (ipBlock peers) to admit")
			continue
		}
		ports, portsOK := c.convertPorts(ref, path.Child("ports"), rule.Ports)
		var from []v1alpha1.Peer
		for j := range rule.From {
			// An ingress Service peer keeps the rule's ports: they are ports
			// of this project's pods, in KubeSphere as in moat.
			if p, ok := c.convertPeer(ref, path.Child("from").Index(j), &rule.From[j], true); ok {
				from = append(from, p)
			}
		}
		if len(from) > 0 && portsOK {
			out.Ingress = append(out.Ingress, v1alpha1.IngressRule{From: from, Ports: ports})
		}
	}
	for i, rule := range np.Spec.Egress {
		path := spec.Child("egress").Index(i)
		if len(rule.To) == 0 {
			c.problem(ref, path.Child("to").String(), SeverityWarning,
				"an egress rule without peers admits nothing in KubeSphere (its controller skips it): nothing to carry over")
			continue
		}
		ports, portsOK := c.convertPorts(ref, path.Child("ports"), rule.Ports)
		var to []v1alpha1.Peer
		for j := range rule.To {
			p, ok := c.convertPeer(ref, path.Child("to").Index(j), &rule.To[j], false)
			if !ok {
				continue
			}
			if p.Service != nil {
				// KubeSphere admits egress to a Service on the Service's
				// own ports, whatever the rule's ports say; in moat a
				// Service peer without ports means all of them.
				out.Egress = append(out.Egress, v1alpha1.EgressRule{To: []v1alpha1.Peer{p}})
				if len(rule.Ports) > 0 {
					c.problem(ref, path.Child("ports").String(), SeverityWarning, fmt.Sprintf(
						"KubeSphere ignores the rule's ports for the Service peer %s (it admits the Service's ports); so does the conversion", path.Child("to").Index(j)))
				}
				continue
			}
			to = append(to, p)
		}
		if len(to) > 0 && portsOK {
			out.Egress = append(out.Egress, v1alpha1.EgressRule{To: to, Ports: ports})
		}
	}
	egress := len(np.Spec.Egress) > 0
	if egress && len(out.Egress) == 0 {
		c.problem(ref, spec.Child("egress").String(), SeverityError,
			"in KubeSphere this policy restricts the project's egress (to DNS), but none of its egress rules carries over, "+
				"and a moat project restricts egress only once an allowlist has an egress rule: add the egress rules the project needs")
	}
	if len(np.Spec.Egress) == 0 && np.Spec.Egress != nil {
		c.problem(ref, spec.Child("egress").String(), SeverityError,
			"an empty egress list denies all egress of the project in KubeSphere; moat cannot deny all egress with an allowlist: "+
				"write a NetworkPolicy with policyTypes [Egress] and no rules instead")
	}
	if len(out.Ingress) == 0 && len(out.Egress) == 0 {
		return nil, egress
	}
	return newAllowlist(np.Namespace, np.Name, out), egress
}

// convertPeer converts one peer of an ingress (ingress true) or egress rule
// and checks it with moat's rules. The second result is false when the peer
// does not carry over (a problem says why).
func (c *converter) convertPeer(ref ObjectRef, path *field.Path, peer *Peer, ingress bool) (v1alpha1.Peer, bool) {
	out, ok := c.peer(ref, path, peer)
	if !ok {
		return v1alpha1.Peer{}, false
	}
	errs, warnings := validation.ValidatePeer(&out, ingress, path, c.cfg)
	for _, e := range errs {
		c.problem(ref, e.Field, SeverityError, e.ErrorBody()+": moat refuses such a peer, so it is not carried over")
	}
	for _, w := range warnings {
		c.problem(ref, w.Field, SeverityWarning, w.Detail)
	}
	return out, len(errs) == 0
}

// peer converts one peer as it is, with KubeSphere's reading of it.
func (c *converter) peer(ref ObjectRef, path *field.Path, peer *Peer) (v1alpha1.Peer, bool) {
	set := 0
	for _, isSet := range []bool{peer.Service != nil, peer.Namespace != nil, peer.IPBlock != nil} {
		if isSet {
			set++
		}
	}
	switch {
	case set == 0:
		c.problem(ref, path.String(), SeverityError,
			"a peer must set one of namespace, service or ipBlock: KubeSphere's controller refuses the whole policy for it")
		return v1alpha1.Peer{}, false
	case set > 1:
		c.problem(ref, path.String(), SeverityWarning,
			"a peer sets more than one of service, namespace and ipBlock: KubeSphere uses only the first of them in that order; so does the conversion")
	}
	switch {
	case peer.Service != nil:
		return c.convertService(ref, path.Child("service"), peer.Service)
	case peer.Namespace != nil:
		if peer.Namespace.Name == "" {
			c.problem(ref, path.Child("namespace", "name").String(), SeverityError, "empty: name the namespace to admit")
			return v1alpha1.Peer{}, false
		}
		return v1alpha1.Peer{Namespace: peer.Namespace.Name}, true
	default:
		return c.convertIPBlock(ref, path.Child("ipBlock"), peer.IPBlock)
	}
}

// convertService converts a Service peer, checking the Service when the
// input holds it.
func (c *converter) convertService(ref ObjectRef, path *field.Path, s *ServiceSelector) (v1alpha1.Peer, bool) {
	if s.Name == "" || s.Namespace == "" {
		c.problem(ref, path.String(), SeverityError,
			"service.name and service.namespace are both required: KubeSphere's controller cannot resolve the Service and refuses the whole policy")
		return v1alpha1.Peer{}, false
	}
	peer := v1alpha1.Peer{Service: &v1alpha1.ServiceReference{Namespace: s.Namespace, Name: s.Name}}
	svc, ok := c.services[s.Namespace+"/"+s.Name]
	if !ok {
		return peer, true
	}
	if selection := v1alpha1.SelectionOf(svc); selection != v1alpha1.ServiceSelectable {
		what := "has no selector"
		if selection == v1alpha1.ServiceExternalName {
			what = "is of type ExternalName"
		}
		c.problem(ref, path.String(), SeverityError, fmt.Sprintf(
			"Service %s/%s %s, so no NetworkPolicy can select its endpoints: KubeSphere's controller refuses the whole policy "+
				"and moat refuses such a peer; use an ipBlock peer with the addresses behind the Service", s.Namespace, s.Name, what))
		return v1alpha1.Peer{}, false
	}
	for _, p := range svc.Spec.Ports {
		if v1alpha1.TargetPort(p) != intstr.FromInt32(p.Port) {
			c.problem(ref, path.String(), SeverityWarning, fmt.Sprintf(
				"Service %s/%s port %d goes to target port %s: KubeSphere's policy admitted port %d on the pods, moat admits the target port that the Service really uses",
				s.Namespace, s.Name, p.Port, p.TargetPort.String(), p.Port))
			break
		}
	}
	return peer, true
}

// convertIPBlock converts an ipBlock, clearing host bits as NetworkPolicy
// implementations do (validation.CanonicalCIDR); convertPeer checks the
// result.
func (c *converter) convertIPBlock(ref ObjectRef, path *field.Path, b *networkingv1.IPBlock) (v1alpha1.Peer, bool) {
	out := &v1alpha1.IPBlock{CIDR: c.canonicalCIDR(ref, path.Child("cidr"), b.CIDR)}
	for i, e := range b.Except {
		out.Except = append(out.Except, c.canonicalCIDR(ref, path.Child("except").Index(i), e))
	}
	return v1alpha1.Peer{IPBlock: out}, true
}

// canonicalCIDR returns the network NetworkPolicy matches for s, with a
// warning when that is not s as written; s itself when it is no CIDR.
func (c *converter) canonicalCIDR(ref ObjectRef, path *field.Path, s string) string {
	p, ok := validation.CanonicalCIDR(s)
	if !ok || p.String() == s {
		return s
	}
	c.problem(ref, path.String(), SeverityWarning, fmt.Sprintf("%q has host bits set or is not in canonical form: converted to %s, the network NetworkPolicy matches", s, p))
	return p.String()
}

// convertPorts converts NetworkPolicy ports (a port without protocol is
// TCP), leaving out those that moat refuses. The second result is false
// when ports were given and none carries over: without ports, the rule would
// admit every port.
func (c *converter) convertPorts(ref ObjectRef, path *field.Path, ports []networkingv1.NetworkPolicyPort) ([]v1alpha1.Port, bool) {
	var out []v1alpha1.Port
	for i, p := range ports {
		protocol := v1alpha1.ProtocolOrTCP(p.Protocol)
		port := v1alpha1.Port{Protocol: &protocol, Port: p.Port, EndPort: p.EndPort}
		if errs := validation.ValidatePort(port.Protocol, port.Port, port.EndPort, path.Index(i), c.cfg); len(errs) > 0 {
			for _, e := range errs {
				c.problem(ref, e.Field, SeverityError, e.ErrorBody()+": moat refuses such a port, so it is not carried over")
			}
			continue
		}
		out = append(out, port)
	}
	if len(ports) > 0 && len(out) == 0 {
		c.problem(ref, path.String(), SeverityError,
			"none of the rule's ports carries over, and without ports the rule would admit every port: the rule is not carried over")
		return nil, false
	}
	return out, true
}

// nodeProblems reports the node SNAT addresses that KubeSphere admits into
// isolated projects: moat admits them through a flag.
func (c *converter) nodeProblems() {
	var ips []string
	for _, node := range c.in.Nodes {
		if node == nil {
			continue
		}
		for _, ip := range strings.Split(node.Annotations[SNATNodeIPsAnnotation], ";") {
			if ip = strings.TrimSpace(ip); ip != "" {
				if addr, err := netip.ParseAddr(ip); err == nil {
					ips = append(ips, netip.PrefixFrom(addr, addr.BitLen()).String())
				}
			}
		}
	}
	if len(ips) == 0 || len(c.result.Namespaces) == 0 {
		return
	}
	sort.Strings(ips)
	c.problem(ObjectRef{Kind: "Node", Name: "*"}, "metadata.annotations["+SNATNodeIPsAnnotation+"]", SeverityWarning,
		"KubeSphere admits these node SNAT addresses into every isolated project; moat does so when it runs with --allowed-ingress-cidrs="+strings.Join(ips, ","))
}

func (c *converter) problem(ref ObjectRef, fld string, severity Severity, msg string) {
	c.result.Problems = append(c.result.Problems, Problem{Object: ref, Field: fld, Message: msg, Severity: severity})
}

func (c *converter) sortedPolicies() []*NamespaceNetworkPolicy {
	var out []*NamespaceNetworkPolicy
	for _, np := range c.in.Policies {
		if np != nil {
			out = append(out, np)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// dnsAllowlist admits the node-local DNS cache on port 53.
func dnsAllowlist(namespace string) *v1alpha1.NetworkAllowlist {
	port := intstr.FromInt32(53)
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	return newAllowlist(namespace, DNSAllowlistName, v1alpha1.NetworkAllowlistSpec{
		Egress: []v1alpha1.EgressRule{{
			To:    []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: NodeLocalDNSIP + "/32"}}},
			Ports: []v1alpha1.Port{{Protocol: &tcp, Port: &port}, {Protocol: &udp, Port: &port}},
		}},
	})
}

func newAllowlist(namespace, name string, spec v1alpha1.NetworkAllowlistSpec) *v1alpha1.NetworkAllowlist {
	return &v1alpha1.NetworkAllowlist{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkAllowlist"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       spec,
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// String formats the problem as moat validate formats findings:
// ORIGIN: [warning: ]KIND/NAMESPACE/NAME: FIELD: MESSAGE.
func (p Problem) String() string {
	var b strings.Builder
	origin := p.Origin
	if origin == "" {
		origin = "<input>"
	}
	b.WriteString(origin + ": ")
	if p.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if p.Object.Name != "" {
		b.WriteString(p.Object.String() + ": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}
