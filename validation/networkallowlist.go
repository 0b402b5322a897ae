package validation

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

// ValidateNetworkAllowlist checks a new allowlist. cluster may be nil: lookup-based rules are then skipped.
//
// Errors reject what cannot work (malformed peers, CIDRs and ports, SCTP on a
// cluster without SCTP support, Services that NetworkPolicy cannot select).
// Warnings flag what is accepted but will not behave as the user probably
// expects yet: missing Services and namespaces (GitOps applies objects in any
// order), very wide or cluster-internal ipBlocks, ingress ipBlocks behind
// Services that lose the client address, and ingress from a project whose own
// egress rules do not let the traffic out.
//
// A service peer without a namespace refers to the allowlist's namespace;
// lookups that need the allowlist's namespace are skipped while it is empty.
// A failed lookup never rejects: it becomes a warning saying what was not
// checked. A nil allowlist has nothing to check.
func ValidateNetworkAllowlist(nal *v1alpha1.NetworkAllowlist, cfg Config, cluster Cluster) (field.ErrorList, []Warning) {
	return ValidateNetworkAllowlistUpdate(nal, nil, cfg, cluster)
}

// ValidateNetworkAllowlistUpdate checks nal, which replaces the stored old
// (nil: nal is new), with the rules of ValidateNetworkAllowlist, ratcheted:
// an error about a port, ipBlock, Service or namespace peer that old already
// holds (anywhere in its spec) becomes a warning, so that an allowlist stored
// before a rule applied (or while SCTP was on) can still be edited and can
// shed the offending value, but cannot gain a new one.
func ValidateNetworkAllowlistUpdate(nal, old *v1alpha1.NetworkAllowlist, cfg Config, cluster Cluster) (field.ErrorList, []Warning) {
	if nal == nil {
		return nil, nil
	}
	v := &allowlistValidator{nal: nal, cfg: cfg, cluster: cluster, stored: storedAllowlist(old)}
	specPath := field.NewPath("spec")

	ingressPath := specPath.Child("ingress")
	v.tooMany(ingressPath, len(nal.Spec.Ingress), v1alpha1.MaxRules)
	for i := range nal.Spec.Ingress {
		rule := &nal.Spec.Ingress[i]
		rulePath := ingressPath.Index(i)
		v.peers(rule.From, rulePath.Child("from"), true)
		v.ports(rule.Ports, rulePath.Child("ports"))
		v.checkIngressServicePorts(rule.Ports, rulePath.Child("ports"))
	}

	egressPath := specPath.Child("egress")
	v.tooMany(egressPath, len(nal.Spec.Egress), v1alpha1.MaxRules)
	for i := range nal.Spec.Egress {
		rule := &nal.Spec.Egress[i]
		rulePath := egressPath.Index(i)
		v.peers(rule.To, rulePath.Child("to"), false)
		v.ports(rule.Ports, rulePath.Child("ports"))
		if len(rule.Ports) > 0 {
			for j := range rule.To {
				if rule.To[j].KubernetesAPI != nil {
					v.warn(rulePath.Child("to").Index(j).Child("kubernetesAPI"),
						"the rule's ports do not apply to the API server: moat allows the ports of its EndpointSlices (e.g. 6443); put kubernetesAPI in a rule of its own to keep this clear")
				}
			}
		}
	}
	return v.errs, v.warnings
}

// storedAllowlist collects the values of a stored allowlist for ratcheting;
// nil for none.
func storedAllowlist(old *v1alpha1.NetworkAllowlist) *stored {
	if old == nil {
		return nil
	}
	s := newStored()
	addPeers := func(peers []v1alpha1.Peer) {
		for _, p := range peers {
			switch {
			case p.Namespace != "":
				s.namespaces[p.Namespace] = true
			case p.Service != nil:
				s.services[p.Service.NamespaceIn(old.Namespace)+"/"+p.Service.Name] = true
			case p.IPBlock != nil:
				s.ipBlocks[ipBlockValue(p.IPBlock.CIDR, p.IPBlock.Except)] = true
			}
		}
	}
	addPorts := func(ports []v1alpha1.Port) {
		for _, p := range ports {
			s.ports[portValueOf(p.Protocol, p.Port, p.EndPort)] = true
		}
	}
	for _, rule := range old.Spec.Ingress {
		addPeers(rule.From)
		addPorts(rule.Ports)
	}
	for _, rule := range old.Spec.Egress {
		addPeers(rule.To)
		addPorts(rule.Ports)
	}
	return s
}

// allowlistValidator collects the findings for one allowlist and caches the
// lookups that several peers share.
type allowlistValidator struct {
	nal     *v1alpha1.NetworkAllowlist
	cfg     Config
	cluster Cluster
	// stored is what the stored allowlist holds (nil for a create).
	stored *stored

	errs     field.ErrorList
	warnings []Warning

	// services are the facts of the Services of the allowlist's
	// namespace; loaded once by namespaceServices.
	services       *ServiceFacts
	servicesErr    error
	servicesLoaded bool
}

// namespaceServices returns the facts of the Services of the allowlist's
// namespace, derived once (see FactSource). When the lookup fails, the first
// caller records a warning at fldPath saying what was not checked
// (unchecked) and every caller gets false.
func (v *allowlistValidator) namespaceServices(fldPath *field.Path, unchecked string) (*ServiceFacts, bool) {
	if !v.servicesLoaded {
		v.servicesLoaded = true
		v.services, v.servicesErr = serviceFacts(v.cluster, v.nal.Namespace)
		if v.servicesErr != nil {
			v.warn(fldPath, "could not list the Services of namespace %s, %s: %v", v.nal.Namespace, unchecked, v.servicesErr)
		}
	}
	return v.services, v.servicesErr == nil
}

func (v *allowlistValidator) warn(fldPath *field.Path, format string, args ...any) {
	v.warnings = append(v.warnings, newWarning(fldPath, fmt.Sprintf(format, args...)))
}

// reject records errs about a value; kept says that the stored object
// already holds that value, which turns the errors into warnings (ratchet).
func (v *allowlistValidator) reject(errs field.ErrorList, kept bool) {
	errs, warnings := ratchet(errs, kept)
	v.errs = append(v.errs, errs...)
	v.warnings = append(v.warnings, warnings...)
}

func (v *allowlistValidator) tooMany(fldPath *field.Path, n, limit int) {
	if n > limit {
		v.errs = append(v.errs, field.TooMany(fldPath, n, limit))
	}
}

func (v *allowlistValidator) ports(ports []v1alpha1.Port, fldPath *field.Path) {
	v.tooMany(fldPath, len(ports), v1alpha1.MaxPorts)
	for i := range ports {
		p := &ports[i]
		if errs := ValidatePort(p.Protocol, p.Port, p.EndPort, fldPath.Index(i), v.cfg); len(errs) > 0 {
			v.reject(errs, v.stored.hasPort(portValueOf(p.Protocol, p.Port, p.EndPort)))
		}
	}
}

func (v *allowlistValidator) peers(peers []v1alpha1.Peer, fldPath *field.Path, ingress bool) {
	if len(peers) == 0 {
		v.errs = append(v.errs, field.Required(fldPath,
			"list at least one peer (an empty list would mean everyone); to allow every address, add an ipBlock peer with cidr 0.0.0.0/0 (and one with ::/0)"))
		return
	}
	v.tooMany(fldPath, len(peers), v1alpha1.MaxPeers)
	for i := range peers {
		v.peer(&peers[i], fldPath.Index(i), ingress)
	}
}

// peerKindsList is "namespace, service or ipBlock", for messages.
var peerKindsList = func() string {
	names := make([]string, len(v1alpha1.PeerKinds))
	for i, k := range v1alpha1.PeerKinds {
		names[i] = string(k)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}()

// ValidatePeer checks one peer of an ingress (ingress true) or egress rule
// of an allowlist with the rules of ValidateNetworkAllowlist that
// need no lookup: exactly one kind, valid names, a valid ipBlock (see
// ValidateIPBlock) and no kubernetesAPI peer in ingress. fldPath is the path
// of the peer. It is for converters (moat import) that build allowlists peer
// by peer and report each finding at the field it came from.
func ValidatePeer(peer *v1alpha1.Peer, ingress bool, fldPath *field.Path, cfg Config) (field.ErrorList, []Warning) {
	v := &allowlistValidator{nal: &v1alpha1.NetworkAllowlist{}, cfg: cfg}
	v.peer(peer, fldPath, ingress)
	return v.errs, v.warnings
}

func (v *allowlistValidator) peer(peer *v1alpha1.Peer, fldPath *field.Path, ingress bool) {
	switch kinds := peer.Kinds(); len(kinds) {
	case 0:
		v.errs = append(v.errs, field.Required(fldPath, "set exactly one of "+peerKindsList))
		return
	case 1:
	default:
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = string(k)
		}
		v.errs = append(v.errs, field.Forbidden(fldPath, fmt.Sprintf(
			"sets %s: a peer must set exactly one of %s; write one peer per kind", strings.Join(names, " and "), peerKindsList)))
	}

	if peer.Namespace != "" {
		v.namespacePeer(peer.Namespace, fldPath.Child("namespace"), ingress)
	}
	if peer.Service != nil {
		v.servicePeer(peer.Service, fldPath.Child("service"))
	}
	if peer.Project != "" {
		v.projectPeer(peer.Project, fldPath.Child("project"))
	}
	if peer.KubernetesAPI != nil && ingress {
		v.errs = append(v.errs, field.Forbidden(fldPath.Child("kubernetesAPI"),
			"kubernetesAPI is an egress peer: the API server is reached from the project, it does not connect into it; move it to an egress rule"))
	}
	if peer.IPBlock != nil {
		ipBlockPath := fldPath.Child("ipBlock")
		errs, warnings := ValidateIPBlock(peer.IPBlock.CIDR, peer.IPBlock.Except, ipBlockPath, v.cfg)
		v.reject(errs, v.stored.hasIPBlock(ipBlockValue(peer.IPBlock.CIDR, peer.IPBlock.Except)))
		v.warnings = append(v.warnings, warnings...)
		if ingress && len(errs) == 0 {
			v.checkSourceAddressKept(ipBlockPath)
		}
	}
}

// invalidName returns an Invalid error on fldPath unless check (a
// k8s.io/apimachinery name check) accepts name.
// The error is at fldPath's child named child, or at fldPath when child is
// empty (the path is built only for an error: this runs for every peer).
func invalidName(fldPath *field.Path, child, name string, check func(string) []string) field.ErrorList {
	if msgs := check(name); len(msgs) > 0 {
		if child != "" {
			fldPath = fldPath.Child(child)
		}
		return field.ErrorList{field.Invalid(fldPath, name, strings.Join(msgs, "; "))}
	}
	return nil
}

// isDNS1123Label is utilvalidation.IsDNS1123Label, which it calls only for
// the wording of the errors: a valid label is recognised without the
// regular expression (isDNSLabel).
func isDNS1123Label(name string) []string {
	if isDNSLabel(name, false) {
		return nil
	}
	return utilvalidation.IsDNS1123Label(name)
}

// isDNS1035Label is utilvalidation.IsDNS1035Label, likewise.
func isDNS1035Label(name string) []string {
	if isDNSLabel(name, true) {
		return nil
	}
	return utilvalidation.IsDNS1035Label(name)
}

// isDNSLabel reports whether name is a DNS label of at most 63 characters:
// lower-case letters, digits and '-', starting and ending with a letter or a
// digit (RFC 1123), and starting with a letter when letterFirst (RFC 1035).
// It accepts exactly what utilvalidation.IsDNS1123Label (IsDNS1035Label when
// letterFirst) accepts.
func isDNSLabel(name string, letterFirst bool) bool {
	if len(name) == 0 || len(name) > utilvalidation.DNS1123LabelMaxLength {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9':
			if i == 0 && letterFirst {
				return false
			}
		case c == '-':
			if i == 0 || i == len(name)-1 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// projectPeer checks a project peer: a label value, which selects anything
// only when moat has a project label.
func (v *allowlistValidator) projectPeer(project string, fldPath *field.Path) {
	if msgs := utilvalidation.IsValidLabelValue(project); len(msgs) > 0 {
		v.errs = append(v.errs, field.Invalid(fldPath, project, strings.Join(msgs, "; ")))
		return
	}
	if v.cfg.Policy.ProjectLabel == "" {
		v.warn(fldPath, "moat has no project label (--project-label), so project %s selects no namespace and the peer is left out; set --project-label (e.g. kubesphere.io/workspace) or use namespace peers", project)
	}
}

func (v *allowlistValidator) namespacePeer(name string, fldPath *field.Path, ingress bool) {
	if errs := invalidName(fldPath, "", name, isDNS1123Label); len(errs) > 0 {
		v.reject(errs, v.stored.hasNamespace(name))
		return
	}
	if v.cluster == nil {
		return
	}
	ns, err := v.cluster.Namespace(name)
	switch {
	case err != nil:
		v.warn(fldPath, "could not look up namespace %s, so it was not checked: %v", name, err)
		return
	case ns == nil:
		// Issue 20, case 10: the name can be claimed.
		what := "is admitted into this project by this rule"
		if !ingress {
			what = "receives this project's traffic through this rule"
		}
		v.warn(fldPath, "namespace %s does not exist yet: whoever creates a namespace of that name %s; create it (or correct the name) before relying on the rule", name, what)
		return
	}
	if ingress && v.nal.Namespace != "" && name != v.nal.Namespace {
		v.checkPeerEgress(ns, fldPath)
	}
}

// checkPeerEgress warns when an ingress namespace peer is an isolated project
// that restricts its egress without a rule towards this namespace: the seed's
// "check whether the peer project has a corresponding egress rule".
func (v *allowlistValidator) checkPeerEgress(peerNS *corev1.Namespace, fldPath *field.Path) {
	if !v1alpha1.Isolated(peerNS) {
		return
	}
	egress, err := egressFacts(v.cluster, peerNS.Name)
	if err != nil {
		v.warn(fldPath, "could not list the NetworkAllowlists of namespace %s, so its egress rules were not checked: %v", peerNS.Name, err)
		return
	}
	if egress.blocks(v.nal.Namespace) {
		v.warn(fldPath, "namespace %[1]s restricts its egress and none of its egress rules reaches %[2]s, so its pods still cannot connect: "+
			"add an egress rule to namespace %[2]s (or to a Service in it) in a NetworkAllowlist of %[1]s",
			peerNS.Name, v.nal.Namespace)
	}
}

func (v *allowlistValidator) servicePeer(ref *v1alpha1.ServiceReference, fldPath *field.Path) {
	namespace := ref.NamespaceIn(v.nal.Namespace)
	key := namespace + "/" + ref.Name
	kept := v.stored.hasService(key)
	var errs field.ErrorList
	if ref.Namespace != "" {
		errs = append(errs, invalidName(fldPath, "namespace", ref.Namespace, isDNS1123Label)...)
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), "name the Service, e.g. nginx"))
	} else {
		errs = append(errs, invalidName(fldPath, "name", ref.Name, isDNS1035Label)...)
	}
	if len(errs) > 0 {
		v.reject(errs, kept)
		return
	}
	if v.cluster == nil || namespace == "" {
		return
	}

	svc, err := v.cluster.Service(namespace, ref.Name)
	if err != nil {
		v.warn(fldPath, "could not look up Service %s, so it was not checked: %v", key, err)
		return
	}
	if svc == nil {
		if ns, err := v.cluster.Namespace(namespace); err == nil && ns == nil {
			v.warn(fldPath, "Service %s does not exist yet and neither does namespace %s; the peer allows nothing until both are created, and whoever creates namespace %s chooses the pods it selects: create the namespace (or correct the name)", key, namespace, namespace)
			return
		}
		v.warn(fldPath, "Service %s does not exist yet; the peer allows nothing until it is created (the Ready condition reports %s meanwhile)",
			key, v1alpha1.ReasonServiceNotFound)
		return
	}
	switch v1alpha1.SelectionOf(svc) {
	case v1alpha1.ServiceExternalName:
		v.reject(field.ErrorList{field.Invalid(fldPath, key, fmt.Sprintf(
			"Service %s is of type ExternalName (%s): NetworkPolicy cannot select its endpoints; use an ipBlock peer with the addresses %s resolves to",
			key, svc.Spec.ExternalName, svc.Spec.ExternalName))}, kept)
	case v1alpha1.ServiceWithoutSelector:
		if namespace == kubernetesAPINamespace && ref.Name == kubernetesAPIName {
			v.reject(field.ErrorList{field.Invalid(fldPath, key, fmt.Sprintf(
				"Service %s is the Kubernetes API server and has no selector: NetworkPolicy cannot select its endpoints; use the peer kubernetesAPI: {} instead, which follows the API server's addresses",
				key))}, kept)
			return
		}
		v.reject(field.ErrorList{field.Invalid(fldPath, key, fmt.Sprintf(
			"Service %s has no selector: NetworkPolicy cannot select its endpoints; use an ipBlock peer with the endpoint addresses (kubectl get endpointslices -n %s -l kubernetes.io/service-name=%s)",
			key, namespace, ref.Name))}, kept)
	}
}

// checkSourceAddressKept warns on an ingress ipBlock when the namespace
// exposes NodePort or LoadBalancer Services that replace the client's source
// address (externalTrafficPolicy Cluster, the default): the seed's note
// recommends Local.
func (v *allowlistValidator) checkSourceAddressKept(fldPath *field.Path) {
	if v.cluster == nil || v.nal.Namespace == "" {
		return
	}
	services, ok := v.namespaceServices(fldPath, "so their externalTrafficPolicy was not checked")
	if !ok || len(services.sourceLoss) == 0 {
		return
	}
	subject := "Service " + services.sourceLoss[0] + " in namespace " + v.nal.Namespace + " keeps"
	if len(services.sourceLoss) > 1 {
		subject = "Services " + listBounded(services.sourceLoss, ", ", "Services") + " in namespace " + v.nal.Namespace + " keep"
	}
	v.warn(fldPath, "%s externalTrafficPolicy Cluster, so clients that come in through a node arrive with a node's address and this ipBlock does not match them: "+
		"set spec.externalTrafficPolicy: Local on the Service to keep the client's source address", subject)
}
