package validation

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

// Limits mirrored from the CRD schema, so that `moat validate` (which has no
// API server to apply the schema) rejects the same lists.
const (
	maxRules = 64
	maxPeers = 64
	maxPorts = 64
)

// ValidateNetworkAllowlist checks an allowlist. cluster may be nil: lookup-based rules are then skipped.
//
// Errors reject what cannot work (malformed peers, CIDRs and ports, SCTP on a
// cluster without SCTP support, Services that NetworkPolicy cannot select).
// Warnings, each prefixed with the field path, flag what is accepted but will
// not behave as the user probably expects yet: missing Services and
// namespaces (GitOps applies objects in any order), very wide or
// cluster-internal ipBlocks, ingress ipBlocks behind Services that lose the
// client address, and ingress from a project whose own egress rules do not
// let the traffic out.
//
// A service peer without a namespace refers to the allowlist's namespace;
// lookups that need the allowlist's namespace are skipped while it is empty.
// A failed lookup never rejects: it becomes a warning saying what was not
// checked. A nil allowlist has nothing to check.
func ValidateNetworkAllowlist(nal *v1alpha1.NetworkAllowlist, cfg Config, cluster Cluster) (field.ErrorList, []string) {
	if nal == nil {
		return nil, nil
	}
	v := &allowlistValidator{nal: nal, cfg: cfg, cluster: cluster}
	specPath := field.NewPath("spec")

	ingressPath := specPath.Child("ingress")
	if len(nal.Spec.Ingress) > maxRules {
		v.errs = append(v.errs, field.TooMany(ingressPath, len(nal.Spec.Ingress), maxRules))
	}
	for i := range nal.Spec.Ingress {
		rule := &nal.Spec.Ingress[i]
		rulePath := ingressPath.Index(i)
		v.peers(rule.From, rulePath.Child("from"), true)
		v.ports(rule.Ports, rulePath.Child("ports"))
	}

	egressPath := specPath.Child("egress")
	if len(nal.Spec.Egress) > maxRules {
		v.errs = append(v.errs, field.TooMany(egressPath, len(nal.Spec.Egress), maxRules))
	}
	for i := range nal.Spec.Egress {
		rule := &nal.Spec.Egress[i]
		rulePath := egressPath.Index(i)
		v.peers(rule.To, rulePath.Child("to"), false)
		v.ports(rule.Ports, rulePath.Child("ports"))
	}
	return v.errs, v.warnings
}

// allowlistValidator collects the findings for one allowlist and caches the
// lookups that several peers share.
type allowlistValidator struct {
	nal     *v1alpha1.NetworkAllowlist
	cfg     Config
	cluster Cluster

	errs     field.ErrorList
	warnings []string

	// sourceLossServices describes the namespace's NodePort and
	// LoadBalancer Services with externalTrafficPolicy Cluster; computed once.
	sourceLossServices       []string
	sourceLossServicesLoaded bool
}

func (v *allowlistValidator) warn(fldPath *field.Path, format string, args ...any) {
	v.warnings = append(v.warnings, fldPath.String()+": "+fmt.Sprintf(format, args...))
}

func (v *allowlistValidator) ports(ports []v1alpha1.Port, fldPath *field.Path) {
	if len(ports) > maxPorts {
		v.errs = append(v.errs, field.TooMany(fldPath, len(ports), maxPorts))
	}
	for i := range ports {
		p := &ports[i]
		v.errs = append(v.errs, validatePort(p.Protocol, p.Port, p.EndPort, fldPath.Index(i), v.cfg)...)
	}
}

func (v *allowlistValidator) peers(peers []v1alpha1.Peer, fldPath *field.Path, ingress bool) {
	if len(peers) == 0 {
		v.errs = append(v.errs, field.Required(fldPath,
			"list at least one peer (an empty list would mean everyone); to allow every address, add an ipBlock peer with cidr 0.0.0.0/0 (and one with ::/0)"))
		return
	}
	if len(peers) > maxPeers {
		v.errs = append(v.errs, field.TooMany(fldPath, len(peers), maxPeers))
	}
	for i := range peers {
		v.peer(&peers[i], fldPath.Index(i), ingress)
	}
}

func (v *allowlistValidator) peer(peer *v1alpha1.Peer, fldPath *field.Path, ingress bool) {
	var kinds []string
	if peer.Namespace != "" {
		kinds = append(kinds, "namespace")
	}
	if peer.Service != nil {
		kinds = append(kinds, "service")
	}
	if peer.IPBlock != nil {
		kinds = append(kinds, "ipBlock")
	}
	switch len(kinds) {
	case 0:
		v.errs = append(v.errs, field.Required(fldPath, "set exactly one of namespace, service or ipBlock"))
		return
	case 1:
	default:
		v.errs = append(v.errs, field.Forbidden(fldPath, fmt.Sprintf(
			"sets %s: a peer must set exactly one of namespace, service or ipBlock; write one peer per kind", strings.Join(kinds, " and "))))
	}

	if peer.Namespace != "" {
		v.namespacePeer(peer.Namespace, fldPath.Child("namespace"), ingress)
	}
	if peer.Service != nil {
		v.servicePeer(peer.Service, fldPath.Child("service"))
	}
	if peer.IPBlock != nil {
		ipBlockPath := fldPath.Child("ipBlock")
		errs, warnings := ValidateIPBlock(peer.IPBlock.CIDR, peer.IPBlock.Except, ipBlockPath, v.cfg)
		v.errs = append(v.errs, errs...)
		v.warnings = append(v.warnings, warnings...)
		if ingress && len(errs) == 0 {
			v.checkSourceAddressKept(ipBlockPath)
		}
	}
}

// validName appends an error on parent.child unless name is a DNS-1123 label
// (a namespace name) or, with dns1035, a DNS-1035 label (a Service name).
func (v *allowlistValidator) validName(name string, parent *field.Path, child string, dns1035 bool) bool {
	var msgs []string
	if dns1035 {
		msgs = utilvalidation.IsDNS1035Label(name)
	} else {
		msgs = utilvalidation.IsDNS1123Label(name)
	}
	if len(msgs) == 0 {
		return true
	}
	fldPath := parent
	if child != "" {
		fldPath = parent.Child(child)
	}
	v.errs = append(v.errs, field.Invalid(fldPath, name, strings.Join(msgs, "; ")))
	return false
}

func (v *allowlistValidator) namespacePeer(name string, fldPath *field.Path, ingress bool) {
	if !v.validName(name, fldPath, "", false) || v.cluster == nil {
		return
	}
	ns, err := v.cluster.Namespace(name)
	switch {
	case err != nil:
		v.warn(fldPath, "could not look up namespace %s, so it was not checked: %v", name, err)
		return
	case ns == nil:
		v.warn(fldPath, "namespace %s does not exist yet; the rule takes effect once it is created", name)
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
	if enabled, err := IsolationEnabled(peerNS); err != nil || !enabled {
		return
	}
	allowlists, err := v.cluster.Allowlists(peerNS.Name)
	if err != nil {
		v.warn(fldPath, "could not list the NetworkAllowlists of namespace %s, so its egress rules were not checked: %v", peerNS.Name, err)
		return
	}
	restricted := false
	for _, al := range allowlists {
		if al == nil || len(al.Spec.Egress) == 0 {
			continue
		}
		restricted = true
		alNamespace := al.Namespace
		if alNamespace == "" {
			alNamespace = peerNS.Name
		}
		for _, rule := range al.Spec.Egress {
			for _, to := range rule.To {
				if to.Namespace == v.nal.Namespace {
					return
				}
				if to.Service != nil {
					svcNamespace := to.Service.Namespace
					if svcNamespace == "" {
						svcNamespace = alNamespace
					}
					if svcNamespace == v.nal.Namespace {
						return
					}
				}
			}
		}
	}
	if restricted {
		v.warn(fldPath, "namespace %[1]s restricts its egress and none of its egress rules reaches %[2]s, so its pods still cannot connect: "+
			"add an egress rule to namespace %[2]s (or to a Service in it) in a NetworkAllowlist of %[1]s",
			peerNS.Name, v.nal.Namespace)
	}
}

func (v *allowlistValidator) servicePeer(ref *v1alpha1.ServiceReference, fldPath *field.Path) {
	valid := true
	namespace := ref.Namespace
	if namespace == "" {
		namespace = v.nal.Namespace
	} else {
		valid = v.validName(namespace, fldPath, "namespace", false)
	}
	if ref.Name == "" {
		v.errs = append(v.errs, field.Required(fldPath.Child("name"), "name the Service, e.g. nginx"))
		valid = false
	} else if !v.validName(ref.Name, fldPath, "name", true) {
		valid = false
	}
	if !valid || v.cluster == nil || namespace == "" {
		return
	}

	key := namespace + "/" + ref.Name
	svc, err := v.cluster.Service(namespace, ref.Name)
	if err != nil {
		v.warn(fldPath, "could not look up Service %s, so it was not checked: %v", key, err)
		return
	}
	if svc == nil {
		if ns, err := v.cluster.Namespace(namespace); err == nil && ns == nil {
			v.warn(fldPath, "Service %s does not exist yet and neither does namespace %s; the peer allows nothing until both are created", key, namespace)
			return
		}
		v.warn(fldPath, "Service %s does not exist yet; the peer allows nothing until it is created (the Ready condition reports %s meanwhile)",
			key, v1alpha1.ReasonServiceNotFound)
		return
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		v.errs = append(v.errs, field.Invalid(fldPath, key, fmt.Sprintf(
			"Service %s is of type ExternalName (%s): NetworkPolicy cannot select its endpoints; use an ipBlock peer with the addresses %s resolves to",
			key, svc.Spec.ExternalName, svc.Spec.ExternalName)))
	case len(svc.Spec.Selector) == 0:
		v.errs = append(v.errs, field.Invalid(fldPath, key, fmt.Sprintf(
			"Service %s has no selector: NetworkPolicy cannot select its endpoints; use an ipBlock peer with the endpoint addresses (kubectl get endpointslices -n %s -l kubernetes.io/service-name=%s)",
			key, namespace, ref.Name)))
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
	if !v.sourceLossServicesLoaded {
		v.sourceLossServicesLoaded = true
		services, err := v.cluster.Services(v.nal.Namespace)
		if err != nil {
			v.warn(fldPath, "could not list the Services of namespace %s, so their externalTrafficPolicy was not checked: %v", v.nal.Namespace, err)
			return
		}
		var names []string
		for _, svc := range services {
			if svc == nil {
				continue
			}
			external := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
			if external && svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
				names = append(names, fmt.Sprintf("%s (%s)", svc.Name, svc.Spec.Type))
			}
		}
		slices.Sort(names)
		v.sourceLossServices = names
	}
	if len(v.sourceLossServices) == 0 {
		return
	}
	subject := "Service " + v.sourceLossServices[0] + " in namespace " + v.nal.Namespace + " keeps"
	if len(v.sourceLossServices) > 1 {
		subject = "Services " + strings.Join(v.sourceLossServices, ", ") + " in namespace " + v.nal.Namespace + " keep"
	}
	v.warn(fldPath, "%s externalTrafficPolicy Cluster, so clients that come in through a node arrive with a node's address and this ipBlock does not match them: "+
		"set spec.externalTrafficPolicy: Local on the Service to keep the client's source address", subject)
}
