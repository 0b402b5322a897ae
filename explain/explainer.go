package explain

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"k8s.io/apimachinery/pkg/util/intstr"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// MaxAnswers bounds the answers of one explain (pairs of pods times ports);
// past it the rest is left out and reported.
const MaxAnswers = 400

// Explainer answers in moat's terms: it evaluates the policies with the
// engine, then names, from the model of each namespace involved, why moat
// admits what it admits, and how to admit what it does not.
type Explainer struct {
	Index *Index
	// Models are the models of the namespaces of the endpoints, by name
	// (a namespace without one is treated as not isolated by moat).
	Models map[string]policy.Model
	// Where says where an allowlist is defined: "allowlists.yaml:12"
	// offline, "NetworkAllowlist proj-a/web" live; nil names none.
	Where func(namespace, name string) string
}

// Report is the answer to one question: every pair of endpoints the two
// arguments name, on every port checked.
type Report struct {
	Source      string   `json:"source"`
	Destination string   `json:"destination"`
	Notes       []string `json:"notes,omitempty"`
	Answers     []Answer `json:"answers"`
}

// Answer is the verdict for one connection, with its reasons.
type Answer struct {
	Source      string     `json:"source"`
	Destination string     `json:"destination"`
	Port        Port       `json:"port"`
	Allowed     bool       `json:"allowed"`
	Egress      SideAnswer `json:"egress"`
	Ingress     SideAnswer `json:"ingress"`
}

// SideAnswer is one side's verdict and why.
type SideAnswer struct {
	Side
	// Endpoint is the side's own endpoint (the source for egress).
	Endpoint string `json:"endpoint"`
	// Isolation says what isolates the endpoint in this direction.
	Isolation string `json:"isolation"`
	// Reasons say what admits the connection, one per admitting rule or
	// moat admission.
	Reasons []Reason `json:"reasons,omitempty"`
	// Missing says, when the side denies, what nothing admits.
	Missing string `json:"missing,omitempty"`
	// Admits lists, when moat's isolation denies, what moat admits there.
	Admits []string `json:"admits,omitempty"`
	// Fix is what would admit it, when moat's isolation is what denies.
	Fix *Fix `json:"fix,omitempty"`
	// Tier says what the admin or baseline tier did with the connection,
	// when one of its rules matched.
	Tier string `json:"tier,omitempty"`
}

// Reason is one thing that admits a connection.
type Reason struct {
	// Policy and Field locate the admitting rule: the NetworkPolicy
	// (namespace/name) and the path of its rule or peer.
	Policy string `json:"policy"`
	Field  string `json:"field"`
	// Moat is the provenance of the admission when the policy is moat's:
	// the isolation, a flag, or an allowlist rule.
	Moat *policy.Source `json:"moat,omitempty"`
	// Where is where the allowlist of Moat is defined.
	Where string `json:"where,omitempty"`
	// Text says it for a human.
	Text string `json:"text"`
}

// Fix is a NetworkAllowlist that would admit a denied connection, and who
// must apply it.
type Fix struct {
	// Who is "the destination project NAMESPACE" (ingress) or "the source
	// project NAMESPACE" (egress).
	Who       string                     `json:"who"`
	Allowlist *v1alpha1.NetworkAllowlist `json:"allowlist,omitempty"`
	// Alternative is another way, for an admin, when there is one.
	Alternative string `json:"alternative,omitempty"`
}

// Explain answers for every pair of endpoints of src and dst (sources first
// by name, then destinations) on every port checked.
func (e *Explainer) Explain(src, dst Target) Report {
	r := Report{Source: specString(src.Spec), Destination: specString(dst.Spec)}
	r.Notes = append(targetNotes(src), targetNotes(dst)...)
	for _, s := range src.Endpoints {
		for _, d := range dst.Endpoints {
			if names := e.Index.unresolvedNames(s, d); len(names) > 0 {
				r.Notes = append(r.Notes, fmt.Sprintf("rules name the ports %s, which explain cannot number without the pods of %s: ask by name too (e.g. %s)",
					strings.Join(names, ", "), d, "NAMESPACE/KEY=VALUE:"+names[0]))
			}
			ports, more := e.Index.Ports(dst, s, d)
			if more {
				r.Notes = append(r.Notes, fmt.Sprintf("%s → %s: only the first %d ports are explained", s, d, MaxPorts))
			}
			for _, p := range ports {
				if len(r.Answers) == MaxAnswers {
					r.Notes = append(r.Notes, fmt.Sprintf("only the first %d answers are given: name fewer pods or a port", MaxAnswers))
					return r
				}
				r.Answers = append(r.Answers, e.answer(s, d, p, dst))
			}
		}
	}
	return r
}

// targetNotes say how an argument was read: pods stood for, a Service's
// target ports, pods left out past MaxEndpoints.
func targetNotes(t Target) []string {
	var notes []string
	if t.Note != "" {
		notes = append(notes, t.Note)
	}
	for _, sp := range t.ServicePorts {
		notes = append(notes, fmt.Sprintf("Service %s/%s port %s forwards to target port %s of its pods: NetworkPolicies apply to the pods and their target port, not to the Service",
			t.Service.Namespace, t.Service.Name, servicePortName(sp), targetPortName(sp)))
	}
	if t.Total > len(t.Endpoints) {
		notes = append(notes, fmt.Sprintf("%s names %d pods: only the first %d (by name) are explained", specString(t.Spec), t.Total, len(t.Endpoints)))
	}
	return notes
}

// ExplainArgs parses and resolves the two endpoint arguments, then explains.
func (e *Explainer) ExplainArgs(src, dst string) (Report, error) {
	var targets [2]Target
	for i, arg := range []string{src, dst} {
		spec, err := ParseSpec(arg)
		if err != nil {
			return Report{}, err
		}
		if targets[i], err = e.Index.Resolve(spec); err != nil {
			return Report{}, err
		}
	}
	return e.Explain(targets[0], targets[1]), nil
}

func specString(s Spec) string {
	var b strings.Builder
	switch s.Kind {
	case SpecAddress:
		b.WriteString(s.Prefix.String())
	case SpecNode:
		b.WriteString("node/" + s.Name)
	case SpecNamespace:
		b.WriteString(s.Namespace)
	case SpecLabels:
		b.WriteString(s.Namespace + "/" + s.Selector)
	default:
		b.WriteString(s.Namespace + "/" + s.Name)
	}
	if s.Port != "" {
		b.WriteString(":" + s.Port + protocolSuffix(s.Protocol))
	}
	return b.String()
}

func (e *Explainer) answer(src, dst Endpoint, port Port, dstTarget Target) Answer {
	v := e.Index.Verdict(src, dst, port)
	a := Answer{Source: src.String(), Destination: dst.String(), Port: port, Allowed: v.Allowed}
	a.Egress = e.side(v.Egress, src, dst, src, port, dstTarget)
	a.Ingress = e.side(v.Ingress, src, dst, dst, port, dstTarget)
	return a
}

// side explains one side: self is the side's own endpoint.
func (e *Explainer) side(s Side, src, dst, self Endpoint, port Port, dstTarget Target) SideAnswer {
	peer := dst
	if s.Direction == Ingress {
		peer = src
	}
	out := SideAnswer{Side: s, Endpoint: self.String()}
	model, moat := e.Models[self.Namespace]
	moat = moat && model.Enforced
	out.Isolation = e.isolation(s, self, model, moat)
	restrictsMoat := moat && (s.Direction == Ingress || model.EgressRestricted)
	switch {
	case s.Admin.Decides():
		e.tierSide(&out, s.Admin, "admin", peer, port, restrictsMoat, func() {
			out.moatFix(model, self.Namespace, peer, port, dstTarget)
			if s.Direction == Ingress && e.blockAdmits(model, self.Namespace, peer, dst, port) {
				out.Missing += "; moat's address block that holds it admits it at the NetworkPolicy tier only: the admin tier takes pods by namespace, so admit the namespace"
			}
		})
		return out
	case s.Admin != nil:
		out.Tier = "the admin tier passes it on to NetworkPolicies: " + s.Admin.String(s.Direction)
	case s.Baseline.Decides():
		e.tierSide(&out, s.Baseline, "baseline", peer, port, false, nil)
		out.Tier += fmt.Sprintf(" (no NetworkPolicy selects %s, so the baseline tier decides)", self)
		return out
	}
	if !s.Applies || len(s.Selecting) == 0 {
		return out
	}
	out.Reasons = e.reasons(s, self.Namespace, peer, dst, port, model)
	if s.Allowed {
		return out
	}
	out.Missing = fmt.Sprintf("no rule of %s admits %s %s on %s", describePolicies(s.Selecting), fromTo(s.Direction), peer, port)
	if restrictsMoat {
		out.moatFix(model, self.Namespace, peer, port, dstTarget)
		return out
	}
	out.Missing += fmt.Sprintf("; moat does not restrict %s here: a NetworkPolicy that is not moat's restricts more than moat: add a rule to it", s.Direction)
	return out
}

// moatFix lists what moat admits on the side, and the allowlist that
// admits peer on port.
func (out *SideAnswer) moatFix(model policy.Model, namespace string, peer Endpoint, port Port, dstTarget Target) {
	out.Admits = admits(model, out.Direction)
	out.Fix = fixFor(out.Direction, namespace, peer, port, dstTarget)
}

// tierSide explains a side that an admin-tier or baseline-tier rule decides.
// moatFix, when moat's rule denies what moat's isolation restricts, adds
// what moat admits and the allowlist that admits the peer.
func (e *Explainer) tierSide(out *SideAnswer, r *TierRule, tier string, peer Endpoint, port Port, restrictsMoat bool, moatFix func()) {
	dir := out.Direction
	owner := "moat's"
	if !r.Managed {
		owner = "not moat's: a cluster admin's"
	}
	out.Tier = fmt.Sprintf("the %s tier decides: %s (%s)", tier, r.String(dir), owner)
	if r.Allows() {
		text := fmt.Sprintf("%s, %s: the %s tier admits it", r.String(dir), owner, tier)
		if tier == "admin" {
			text += ", NetworkPolicies are not consulted"
		}
		out.Reasons = []Reason{{Policy: r.Kind + " " + r.Name, Field: fmt.Sprintf("spec.%s[%d]", dir, r.Rule), Text: text}}
		return
	}
	if !r.Managed || !restrictsMoat {
		out.Missing = fmt.Sprintf("the %s tier denies %s %s on %s (%s): no NetworkPolicy or allowlist can admit it; ask its owner", tier, fromTo(dir), peer, port, owner)
		return
	}
	out.Missing = fmt.Sprintf("the admin tier denies %s %s on %s: moat admits no such peer; a tenant NetworkPolicy cannot widen in this mode", fromTo(dir), peer, port)
	moatFix()
}

// blockAdmits reports whether an ingress admission of the model by address
// block holds the pod peer on port.
func (e *Explainer) blockAdmits(m policy.Model, namespace string, peer, dst Endpoint, port Port) bool {
	for _, a := range m.Ingress {
		np := a.Peer.NetworkPolicyPeer()
		if peer.Kind == KindPod && np.IPBlock != nil && e.Index.PeerMatches(namespace, &np, peer) && PortsMatch(a.Ports, port, dst.pod) {
			return true
		}
	}
	return false
}

func fromTo(dir Direction) string {
	if dir == Egress {
		return "to"
	}
	return "from"
}

func describePolicies(refs []PolicyRef) string {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Name
		if !r.Managed {
			names[i] += " (not moat's)"
		}
	}
	return "NetworkPolicy " + strings.Join(names, ", ")
}

// isolation says what isolates self in the side's direction.
func (e *Explainer) isolation(s Side, self Endpoint, m policy.Model, moat bool) string {
	switch {
	case !s.Applies:
		return fmt.Sprintf("%s is not a pod: no NetworkPolicy applies to its %s", self, s.Direction)
	case moat && s.Direction == Ingress:
		return fmt.Sprintf("namespace %s is isolated by moat (%s=true)", self.Namespace, v1alpha1.IsolationLabel)
	case moat && m.EgressRestricted:
		return fmt.Sprintf("namespace %s is isolated by moat and restricts egress (%s)", self.Namespace, egressAllowlists(m))
	case len(s.Selecting) == 0 && moat:
		return fmt.Sprintf("namespace %s is isolated by moat, but its egress is open: no allowlist of it declares egress", self.Namespace)
	case len(s.Selecting) == 0 && e.Index.isolatedNamespace(self.Namespace):
		return fmt.Sprintf("namespace %s is labelled %s=true, but no NetworkPolicy selects %s for %s (moat is not running, or the namespace is protected)", self.Namespace, v1alpha1.IsolationLabel, self, s.Direction)
	case len(s.Selecting) == 0:
		return fmt.Sprintf("no NetworkPolicy selects %s for %s: open (namespace %s is not isolated by moat)", self, s.Direction, self.Namespace)
	}
	return fmt.Sprintf("not isolated by moat; %s select(s) %s for %s", describePolicies(s.Selecting), self, s.Direction)
}

// admits describes what the model admits in a direction, with why.
func admits(m policy.Model, dir Direction) []string {
	admissions := m.Ingress
	if dir == Egress {
		admissions = m.Egress
	}
	out := make([]string, 0, len(admissions))
	for _, a := range admissions {
		out = append(out, fmt.Sprintf("%s on %s (%s)", a.Peer.Describe(), policy.DescribePorts(a.Ports), a.Source))
	}
	return out
}

// egressAllowlists names the allowlists that declare egress.
func egressAllowlists(m policy.Model) string {
	var names []string
	for _, al := range m.Allowlists {
		if al.Egress {
			names = append(names, al.Name)
		}
	}
	return "egress declared by allowlist " + strings.Join(names, ", ")
}

// reasons lists what admits the connection: tenant rules as they are, moat's
// by the model's admissions that hold the peer and the port.
func (e *Explainer) reasons(s Side, namespace string, peer, dst Endpoint, port Port, m policy.Model) []Reason {
	var out []Reason
	var stale []string
	for _, r := range s.Admitting {
		policyName := r.Namespace + "/" + r.Policy
		if r.Managed {
			stale = append(stale, policyName+" "+r.Field(s.Direction))
			continue
		}
		out = append(out, Reason{Policy: policyName, Field: r.Field(s.Direction),
			Text: fmt.Sprintf("NetworkPolicy %s %s (not moat's: a tenant's or an admin's)", policyName, r.Field(s.Direction))})
	}
	if len(stale) == 0 {
		return out
	}
	admissions := m.Ingress
	if s.Direction == Egress {
		admissions = m.Egress
	}
	found := false
	for _, a := range admissions {
		np := a.Peer.NetworkPolicyPeer()
		if e.Index.PeerMatches(namespace, &np, peer) && PortsMatch(a.Ports, port, dst.pod) {
			found = true
			out = append(out, e.moatReason(namespace, a, m.PolicyOf(a, s.Direction == Egress)))
		}
	}
	if !found {
		// moat's policies admit what its model does not: they lag behind
		// the allowlists (live), or were edited.
		out = append(out, Reason{Policy: stale[0], Text: fmt.Sprintf("moat's NetworkPolicy %s, which moat's current model does not explain (stale: moat has not caught up yet)", strings.Join(stale, ", "))})
	}
	return out
}

func (e *Explainer) moatReason(namespace string, a policy.Admission, policyName string) Reason {
	src := a.Source
	r := Reason{Policy: namespace + "/" + policyName, Field: src.Field, Moat: &src}
	what := fmt.Sprintf("%s on %s", a.Peer.Describe(), policy.DescribePorts(a.Ports))
	switch {
	case src.Allowlist != "":
		if e.Where != nil {
			r.Where = e.Where(namespace, src.Allowlist)
		}
		r.Text = fmt.Sprintf("allowlist %s, rule %d (%s): %s", src.Allowlist, src.Rule, src.Field, what)
		if r.Where != "" {
			r.Text += ", at " + r.Where
		}
	case src.Flag != "":
		r.Text = fmt.Sprintf("moat serve %s: %s", src.Flag, what)
	default:
		r.Text = "the namespace's isolation, which always admits the namespace itself"
	}
	r.Text += " [NetworkPolicy " + r.Policy + "]"
	return r
}

// fixFor is the allowlist that admits peer on port, in the namespace of the
// side that denies.
func fixFor(dir Direction, namespace string, peer Endpoint, port Port, dstTarget Target) *Fix {
	al := &v1alpha1.NetworkAllowlist{}
	al.APIVersion, al.Kind = v1alpha1.GroupVersion.String(), "NetworkAllowlist"
	al.Namespace = namespace
	ports := allowlistPorts(port)
	f := &Fix{Allowlist: al}
	if dir == Ingress {
		f.Who = "the destination project " + namespace
		p := allowlistPeer(peer)
		al.Name = allowlistName("allow-from", p)
		al.Spec.Ingress = []v1alpha1.IngressRule{{From: []v1alpha1.Peer{p}, Ports: ports}}
		f.Alternative = ingressAlternative(peer)
		return f
	}
	f.Who = "the source project " + namespace
	p := allowlistPeer(peer)
	if dstTarget.Service != nil && peer.Kind == KindPod {
		p = v1alpha1.Peer{Service: &v1alpha1.ServiceReference{Namespace: dstTarget.Service.Namespace, Name: dstTarget.Service.Name}}
		ports = servicePortsOf(dstTarget)
	}
	al.Name = allowlistName("allow-to", p)
	al.Spec.Egress = []v1alpha1.EgressRule{{To: []v1alpha1.Peer{p}, Ports: ports}}
	return f
}

func ingressAlternative(peer Endpoint) string {
	switch peer.Kind {
	case KindPod:
		return fmt.Sprintf("an admin may instead admit namespace %s into every isolated project: moat serve %s=%s (monitoring, gateways)", peer.Namespace, policy.FlagAllowedIngressNamespaces, peer.Namespace)
	case KindNode:
		return fmt.Sprintf("an admin may instead admit every node into every isolated project: moat serve %s", policy.FlagAllowIngressFromNodes)
	}
	return fmt.Sprintf("an admin may instead admit %s into every isolated project: moat serve %s=%s", peer.Prefix, policy.FlagAllowedIngressCIDRs, peer.Prefix)
}

// allowlistPeer is the peer of an allowlist that holds e: its namespace, or
// its address block.
func allowlistPeer(e Endpoint) v1alpha1.Peer {
	if e.Kind == KindPod {
		return v1alpha1.Peer{Namespace: e.Namespace}
	}
	return v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: e.Prefix.String()}}
}

func allowlistPorts(p Port) []v1alpha1.Port {
	proto := p.Protocol
	out := v1alpha1.Port{Protocol: &proto}
	switch {
	case p.Number != 0:
		n := intstr.FromInt32(p.Number)
		out.Port = &n
	case p.Name != "":
		n := intstr.FromString(p.Name)
		out.Port = &n
	}
	return []v1alpha1.Port{out}
}

func servicePortsOf(t Target) []v1alpha1.Port {
	var out []v1alpha1.Port
	for _, sp := range t.ServicePorts {
		proto := sp.Protocol
		if proto == "" {
			proto = "TCP"
		}
		n := intstr.FromInt32(sp.Port)
		out = append(out, v1alpha1.Port{Protocol: &proto, Port: &n})
	}
	return out
}

// allowlistName is a name for the fix: prefix and the peer, as a DNS label.
func allowlistName(prefix string, p v1alpha1.Peer) string {
	what := p.Namespace
	switch {
	case p.Service != nil:
		what = p.Service.Namespace + "-" + p.Service.Name
	case p.IPBlock != nil:
		what = strings.NewReplacer(".", "-", ":", "-", "/", "-").Replace(p.IPBlock.CIDR)
	}
	name := strings.Trim(prefix+"-"+what, "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}

func servicePortName(sp corev1.ServicePort) string {
	name := fmt.Sprintf("%d/%s", sp.Port, v1alpha1.ProtocolOrTCP(&sp.Protocol))
	if sp.Name != "" {
		name = sp.Name + " (" + name + ")"
	}
	return name
}

func targetPortName(sp corev1.ServicePort) string {
	tp := v1alpha1.TargetPort(sp)
	return tp.String()
}
