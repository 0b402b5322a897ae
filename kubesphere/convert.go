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
	// namespaceIsolated: the project is isolated on its own (annotation):
	// it admits itself, not its workspace.
	namespaceIsolated
	// workspaceIsolated: the workspace's network isolation admits the
	// workspace into the project.
	workspaceIsolated
	// policiesOnly: the namespace is in no workspace, so KubeSphere's
	// namespace controller writes nothing there, but its
	// NamespaceNetworkPolicies are converted and in force all the same.
	policiesOnly
)

// converter holds the lookups of one Convert call.
type converter struct {
	in         Input
	cfg        validation.Config
	namespaces map[string]*corev1.Namespace
	services   map[string]*corev1.Service
	workspaces map[string]Workspace
	// ingressPolicies counts the NamespaceNetworkPolicies of each
	// namespace that restrict ingress (restrictsIngress).
	ingressPolicies map[string]int
	// members lists the namespaces of each workspace, sorted.
	members map[string][]string
	result  Result
}

// Convert converts KubeSphere's isolation switches, workspace isolation and
// NamespaceNetworkPolicies into moat objects, following what KubeSphere's
// network controller does with them. The objects are checked with moat's
// validation rules under cfg (the configuration of the moat that will run
// them): a peer or port that moat refuses is left out (a rule left without
// ports, which would admit every port, goes with it), and so is an object
// that still fails, each with an error at the KubeSphere field it came from.
func Convert(in Input, cfg validation.Config) Result {
	c := newConverter(in, cfg)
	isolated := map[string]isolation{}
	for _, name := range sortedKeys(c.namespaces) {
		ns := c.namespaces[name]
		mode := c.isolationOf(ns)
		isolated[name] = mode
		if mode == notIsolated {
			continue
		}
		c.isolate(name, mode != workspaceIsolated)
		if mode == workspaceIsolated {
			c.workspaceAllowlist(ns)
		}
	}
	egressRestricted := map[string]bool{}
	for _, np := range c.sortedPolicies() {
		if c.inForce(np, isolated) {
			egressRestricted[np.Namespace] = c.convertPolicy(np) || egressRestricted[np.Namespace]
		}
	}
	for _, name := range sortedKeys(egressRestricted) {
		if egressRestricted[name] {
			c.emit(dnsAllowlist(name), ObjectRef{Kind: "Namespace", Name: name})
		}
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

// newConverter indexes the input.
func newConverter(in Input, cfg validation.Config) *converter {
	c := &converter{
		in:              in,
		cfg:             cfg,
		namespaces:      map[string]*corev1.Namespace{},
		services:        map[string]*corev1.Service{},
		workspaces:      map[string]Workspace{},
		ingressPolicies: map[string]int{},
		members:         map[string][]string{},
	}
	for _, ns := range in.Namespaces {
		if ns != nil {
			c.namespaces[ns.Name] = ns
		}
	}
	for _, name := range sortedKeys(c.namespaces) {
		if ws := c.namespaces[name].Labels[WorkspaceLabel]; ws != "" {
			c.members[ws] = append(c.members[ws], name)
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
	for _, np := range in.Policies {
		if np != nil && restrictsIngress(np) {
			c.ingressPolicies[np.Namespace]++
		}
	}
	return c
}

// inForce says whether KubeSphere enforces np in its namespace, whose
// isolation isolated gives, and reports why not when it does not.
func (c *converter) inForce(np *NamespaceNetworkPolicy, isolated map[string]isolation) bool {
	ref := ObjectRef{Kind: NamespaceNetworkPolicyKind.Kind, Namespace: np.Namespace, Name: np.Name}
	switch mode, known := isolated[np.Namespace]; {
	case !known:
		c.problem(ref, "", SeverityWarning, fmt.Sprintf(
			"namespace %s is not in the input, so whether KubeSphere isolates it is unknown: the policy is converted; "+
				"if the project is isolated, also run: kubectl label namespace %s %s=true", np.Namespace, np.Namespace, v1alpha1.IsolationLabel))
	case mode == notIsolated && c.namespaces[np.Namespace].Labels[WorkspaceLabel] == "":
		c.problem(ref, "", SeverityError, fmt.Sprintf(
			"namespace %s is in no workspace, where KubeSphere enforces the policy as it is: it restricts the namespace's egress only, "+
				"and moat restricts egress only in an isolated namespace, which would also close its ingress: not carried over; "+
				"to restrict egress with moat, isolate the namespace and add the ingress it needs", np.Namespace))
		return false
	case mode == notIsolated:
		c.problem(ref, "", SeverityWarning, fmt.Sprintf(
			"not in force: KubeSphere deletes the NamespaceNetworkPolicies of namespace %s, whose isolation is off; nothing to carry over", np.Namespace))
		return false
	case mode == workspaceIsolated:
		c.problem(ref, "", SeverityWarning, fmt.Sprintf(
			"not in force: namespace %s is isolated at the workspace level, where KubeSphere deletes its NamespaceNetworkPolicies; nothing to carry over", np.Namespace))
		return false
	}
	return true
}

// isolate outputs the Namespace patch that isolates name, unless moat
// refuses it (a protected namespace). A namespace isolated alone keeps its
// project group (--project-label) out: v1alpha1.GroupIngressLabel "false".
func (c *converter) isolate(name string, alone bool) {
	ns := &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.IsolationLabel: v1alpha1.IsolationOn}},
	}
	if alone {
		ns.Labels[v1alpha1.GroupIngressLabel] = v1alpha1.IsolationOff
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

// restrictsIngress reports whether the NetworkPolicy KubeSphere writes for
// np restricts ingress: np has an ingress list (even empty), or neither
// list, so that the API server defaults the policy's type to Ingress.
func restrictsIngress(np *NamespaceNetworkPolicy) bool {
	return np.Spec.Ingress != nil || np.Spec.Egress == nil
}

// isolationOf says how KubeSphere's controller isolates ns. It isolates
// only namespaces of a workspace, where the annotation wins over workspace
// isolation; elsewhere only the namespace's NamespaceNetworkPolicies are in
// force.
func (c *converter) isolationOf(ns *corev1.Namespace) isolation {
	ref := ObjectRef{Kind: "Namespace", Name: ns.Name}
	annotated := ns.Annotations[IsolateAnnotation] == IsolateEnabled
	if v, ok := ns.Annotations[IsolateAnnotation]; ok && !annotated {
		c.problem(ref, "metadata.annotations["+IsolateAnnotation+"]", SeverityWarning, fmt.Sprintf(
			"value %q does not turn isolation on (only %q does): not isolated", v, IsolateEnabled))
	}
	workspace := ns.Labels[WorkspaceLabel]
	switch {
	case workspace == "":
		return c.outsideWorkspaces(ns, annotated)
	case annotated:
		return namespaceIsolated
	}
	ws, ok := c.workspaces[workspace]
	if !ok {
		c.problem(ref, "metadata.labels["+WorkspaceLabel+"]", SeverityError, fmt.Sprintf(
			"workspace %s is not in the input, so whether KubeSphere isolates this namespace at the workspace level is unknown: "+
				"it is converted as not isolated; include the workspace (kubectl get workspaces %s -o yaml) and run the import again", workspace, workspace))
		return notIsolated
	}
	if ws.NetworkIsolation {
		return workspaceIsolated
	}
	return notIsolated
}

// outsideWorkspaces says how KubeSphere isolates ns, which is in no
// workspace: its controller writes no isolation policy, but the policies it
// writes for the namespace's NamespaceNetworkPolicies are in force (nothing
// deletes them), so a namespace with one that restricts ingress admits only
// the policies' peers.
func (c *converter) outsideWorkspaces(ns *corev1.Namespace, annotated bool) isolation {
	ref := ObjectRef{Kind: "Namespace", Name: ns.Name}
	if c.ingressPolicies[ns.Name] > 0 {
		c.problem(ref, "", SeverityWarning, fmt.Sprintf(
			"in no workspace, so KubeSphere writes no isolation policy here, but its NamespaceNetworkPolicies are in force: "+
				"the namespace admits only their peers; moat isolates it on its own with their allowlists, and also admits the namespace itself "+
				"and what moat serve's --allowed-ingress-namespaces and --allowed-ingress-cidrs admit (%s)", v1alpha1.GroupIngressLabel+"=false"))
		return policiesOnly
	}
	if annotated {
		c.problem(ref, "metadata.labels["+WorkspaceLabel+"]", SeverityWarning,
			"KubeSphere's controller ignores namespaces outside a workspace, so this one is not isolated although annotated: "+
				"not carried over; to isolate it with moat, run: kubectl label namespace "+ns.Name+" "+v1alpha1.IsolationLabel+"=true")
	}
	return notIsolated
}

// workspaceAllowlist admits the other namespaces of ns's workspace, as
// KubeSphere's workspace isolation does: with moat's --project-label set to
// KubeSphere's workspace label, the isolation itself admits the workspace
// (moat-group-ingress, which follows the label as KubeSphere's policy does);
// otherwise an allowlist names the workspace's namespaces of the input.
func (c *converter) workspaceAllowlist(ns *corev1.Namespace) {
	workspace := ns.Labels[WorkspaceLabel]
	ref := ObjectRef{Kind: "Namespace", Name: ns.Name}
	if c.cfg.Policy.ProjectLabel == WorkspaceLabel {
		c.problem(ref, "", SeverityWarning, fmt.Sprintf(
			"isolated at the workspace level (workspace %s): moat serve --project-label=%s admits the workspace's namespaces, "+
				"those that join it later included", workspace, WorkspaceLabel))
		return
	}
	var peers []v1alpha1.Peer
	for _, name := range c.members[workspace] {
		if name != ns.Name {
			peers = append(peers, v1alpha1.Peer{Namespace: name})
		}
	}
	c.problem(ref, "", SeverityWarning, fmt.Sprintf(
		"isolated at the workspace level (workspace %s): moat admits the %d other namespaces of the workspace found in the input by name; "+
			"namespaces that join the workspace later must be added to allowlist %s, or run moat serve and this import with --project-label=%s", workspace, len(peers), WorkspaceAllowlistName, WorkspaceLabel))
	// A rule holds at most v1alpha1.MaxPeers peers: a large workspace takes
	// several rules.
	var rules []v1alpha1.IngressRule
	for chunk := range slices.Chunk(peers, v1alpha1.MaxPeers) {
		rules = append(rules, v1alpha1.IngressRule{From: chunk})
	}
	if len(rules) > 0 {
		c.emit(newAllowlist(ns.Name, WorkspaceAllowlistName, v1alpha1.NetworkAllowlistSpec{Ingress: rules}), ref)
	}
}

// convertPolicy converts one NamespaceNetworkPolicy in force into an
// allowlist of its name, when anything of it carries over, and reports
// whether it restricts egress in KubeSphere (it has an egress rule).
func (c *converter) convertPolicy(np *NamespaceNetworkPolicy) bool {
	ref := ObjectRef{Kind: NamespaceNetworkPolicyKind.Kind, Namespace: np.Namespace, Name: np.Name}
	al, egress := c.allowlistOf(np, ref)
	if al != nil {
		c.emit(al, ref)
	}
	return egress
}

// allowlistOf converts np. It returns nil when nothing of it carries over,
// and whether it restricts egress in KubeSphere.
func (c *converter) allowlistOf(np *NamespaceNetworkPolicy, ref ObjectRef) (*v1alpha1.NetworkAllowlist, bool) {
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
		c.problem(ref, spec.Child("egress").String(), SeverityWarning, fmt.Sprintf(
			"none of the policy's egress rules carries over: as in KubeSphere, the project's egress stays restricted, "+
				"to DNS (allowlist %s and moat serve --dns-service) and the egress rules of its other allowlists", DNSAllowlistName))
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
	out, ok := c.peer(ref, path, peer, ingress)
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
func (c *converter) peer(ref ObjectRef, path *field.Path, peer *Peer, ingress bool) (v1alpha1.Peer, bool) {
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
		return c.convertService(ref, path.Child("service"), peer.Service, ingress)
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

// convertService converts a Service peer of an ingress (ingress true) or
// egress rule, checking the Service when the input holds it.
func (c *converter) convertService(ref ObjectRef, path *field.Path, s *ServiceSelector, ingress bool) (v1alpha1.Peer, bool) {
	if s.Name == "" || s.Namespace == "" {
		c.problem(ref, path.String(), SeverityError,
			"service.name and service.namespace are both required: KubeSphere's controller cannot resolve the Service and refuses the whole policy")
		return v1alpha1.Peer{}, false
	}
	peer := v1alpha1.Peer{Service: &v1alpha1.ServiceReference{Namespace: s.Namespace, Name: s.Name}}
	svc, ok := c.services[s.Namespace+"/"+s.Name]
	if !ok {
		c.problem(ref, path.String(), SeverityWarning, fmt.Sprintf(
			"Service %s/%s is not in the input: if it does not exist, KubeSphere's controller refuses the whole policy (none of its rules is in force), "+
				"while moat admits the policy's other peers now and this one once the Service exists", s.Namespace, s.Name))
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
	if !ingress {
		c.targetPortProblem(ref, path, svc)
	}
	return peer, true
}

// targetPortProblem reports, for an egress Service peer, the first port of
// svc whose target port differs from its port: KubeSphere admitted the
// port, moat admits the target port. Ingress Service peers use no Service
// ports, in KubeSphere as in moat.
func (c *converter) targetPortProblem(ref ObjectRef, path *field.Path, svc *corev1.Service) {
	s := svc.ObjectMeta
	for _, p := range svc.Spec.Ports {
		if v1alpha1.TargetPort(p) != intstr.FromInt32(p.Port) {
			c.problem(ref, path.String(), SeverityWarning, fmt.Sprintf(
				"Service %s/%s port %d goes to target port %s: KubeSphere's policy admitted port %d on the pods, moat admits the target port that the Service really uses",
				s.Namespace, s.Name, p.Port, p.TargetPort.String(), p.Port))
			return
		}
	}
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
