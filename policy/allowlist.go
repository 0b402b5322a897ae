package policy

import (
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

// translation collects the admissions and problems of one allowlist.
type translation struct {
	*renderer
	allowlist        string
	serviceNamespace string
	problems         []Problem
}

func (t *translation) problem(reason string, path *field.Path, format string, args ...any) {
	t.problems = append(t.problems, Problem{Reason: reason, Field: path.String(), Message: fmt.Sprintf(format, args...)})
}

// admissions translates the rules of an allowlist spec into what they admit,
// rule by rule and peer by peer in declared order.
func (t *translation) admissions(spec v1alpha1.NetworkAllowlistSpec) (ingress, egress []Admission, err error) {
	specPath := field.NewPath("spec")
	for i, rule := range spec.Ingress {
		if ingress, err = t.peers(ingress, specPath.Child("ingress").Index(i), i, "from", rule.From, rule.Ports, false); err != nil {
			return nil, nil, err
		}
	}
	for i, rule := range spec.Egress {
		if egress, err = t.peers(egress, specPath.Child("egress").Index(i), i, "to", rule.To, rule.Ports, true); err != nil {
			return nil, nil, err
		}
	}
	return ingress, egress, nil
}

// peers appends to out what the peers of one rule admit. Dropped peers are
// left out (and reported as problems), so a rule whose peers are all
// dropped admits nothing, never everyone.
//
// Ports of namespace, project and ipBlock peers, and of every ingress peer,
// are the declared ports. Ports of an egress Service peer are the target
// ports of the Service ports that the declared ports name. A kubernetesAPI
// peer becomes one /32 or /128 per API server address, on the ports of its
// EndpointSlice (the declared ports do not apply).
func (t *translation) peers(out []Admission, rulePath *field.Path, rule int, peersField string, peers []v1alpha1.Peer, ports []v1alpha1.Port, egress bool) ([]Admission, error) {
	declared := declaredPorts(ports)
	for j, peer := range peers {
		peerPath := rulePath.Child(peersField).Index(j)
		add := func(p Peer, ports []networkingv1.NetworkPolicyPort) {
			out = append(out, Admission{Peer: p, Ports: ports, Source: Source{Allowlist: t.allowlist, Rule: rule, Field: peerPath.String()}})
		}
		kind, ok := peer.Kind()
		if !ok {
			// Validation (the CRD schema and the webhook) rejects such a
			// peer; should one get here, it admits nothing.
			continue
		}
		switch kind {
		case v1alpha1.PeerNamespace:
			add(Peer{Kind: PeerNamespace, Namespace: peer.Namespace}, declared)
		case v1alpha1.PeerIPBlock:
			add(Peer{Kind: PeerAddresses, CIDR: peer.IPBlock.CIDR, Except: cloneNonEmpty(peer.IPBlock.Except)}, declared)
		case v1alpha1.PeerProject:
			if t.projectLabel == "" {
				t.problem(v1alpha1.ReasonProjectLabelUnset, peerPath.Child("project"),
					"moat has no project label (--project-label), so project %q names no namespaces; the peer is left out: set --project-label or use namespace peers", peer.Project)
				continue
			}
			add(Peer{Kind: PeerGroup, Label: t.projectLabel, Value: peer.Project}, declared)
		case v1alpha1.PeerKubeAPI:
			if !egress {
				// Validation (the CRD schema and the webhook) rejects it.
				continue
			}
			if len(t.apiServer) == 0 {
				t.problem(v1alpha1.ReasonAPIServerNotFound, peerPath.Child("kubernetesAPI"),
					"the Service %s/%s has no ready endpoints in its EndpointSlices, so the API server's addresses are unknown; the peer is left out until they appear",
					APIServerNamespace, APIServerName)
				continue
			}
			for _, eps := range t.apiServer {
				for _, addr := range eps.Addresses {
					add(hostAddresses(addr), eps.Ports)
				}
			}
		case v1alpha1.PeerService:
			r, err := t.servicePeer(peerPath.Child("service"), rulePath.Child("ports"), peer.Service, ports, egress)
			if err != nil {
				return nil, err
			}
			if r == nil {
				continue
			}
			if !egress {
				r.ports = declared
			}
			add(r.peer, r.ports)
		}
	}
	return out, nil
}

// resolvedPeer is a Service peer translated into its pods and the ports
// they may be reached on.
type resolvedPeer struct {
	peer  Peer
	ports []networkingv1.NetworkPolicyPort
}

// servicePeer resolves a Service peer to the Service's pods and, for egress,
// the target ports of the Service ports that ports name. It returns nil when
// the peer is dropped (fail closed), after recording the reason as a problem.
func (t *translation) servicePeer(path, portsPath *field.Path, ref *v1alpha1.ServiceReference, ports []v1alpha1.Port, egress bool) (*resolvedPeer, error) {
	namespace := ref.NamespaceIn(t.serviceNamespace)
	name := namespace + "/" + ref.Name
	svc, err := t.service(namespace, ref.Name)
	if err != nil {
		return nil, err
	}
	if svc == nil {
		t.problem(v1alpha1.ReasonServiceNotFound, path,
			"Service %s does not exist; the peer is left out until the Service is created", name)
		return nil, nil
	}
	switch v1alpha1.SelectionOf(svc) {
	case v1alpha1.ServiceExternalName:
		t.problem(v1alpha1.ReasonServiceSelectorEmpty, path,
			"Service %s is of type ExternalName and selects no pods, so a NetworkPolicy cannot match it; the peer is left out: use an ipBlock peer with the external address instead", name)
		return nil, nil
	case v1alpha1.ServiceWithoutSelector:
		t.problem(v1alpha1.ReasonServiceSelectorEmpty, path,
			"Service %s has no selector, so a NetworkPolicy cannot match its endpoints; the peer is left out: give the Service a selector or use an ipBlock peer", name)
		return nil, nil
	}
	r := &resolvedPeer{peer: Peer{Kind: PeerPods, Namespace: namespace, Selector: maps.Clone(svc.Spec.Selector)}}
	if !egress {
		return r, nil
	}
	if len(ports) == 0 {
		if r.ports = targetPorts(svc.Spec.Ports); len(r.ports) == 0 {
			t.problem(v1alpha1.ReasonServicePortNotFound, path,
				"Service %s declares no ports; the peer is left out: add ports to the Service or list them in the rule with an ipBlock or namespace peer", name)
			return nil, nil
		}
		return r, nil
	}
	for k, p := range ports {
		matched := false
		for _, sp := range svc.Spec.Ports {
			if servicePortMatches(sp, p) {
				matched = true
				r.ports = appendUniquePort(r.ports, policyPort(serviceProtocol(sp), targetPort(sp)))
			}
		}
		if !matched {
			t.problem(v1alpha1.ReasonServicePortNotFound, portsPath.Index(k),
				"%s matches no port of Service %s (its ports: %s); it is left out for this peer", describePort(p), name, describeServicePorts(svc.Spec.Ports))
		}
	}
	if len(r.ports) == 0 {
		t.problem(v1alpha1.ReasonServicePortNotFound, path,
			"none of the rule's ports is a port of Service %s; the peer is left out", name)
		return nil, nil
	}
	return r, nil
}

// servicePortMatches reports whether an allowlist port names the Service
// port: same protocol (nil means TCP), and a port number equal to the
// Service port (or a range containing it), a name equal to the Service
// port's name, or no port at all (every port of the protocol).
func servicePortMatches(sp corev1.ServicePort, p v1alpha1.Port) bool {
	if serviceProtocol(sp) != protocolOf(p) {
		return false
	}
	switch {
	case p.Port == nil:
		return true
	case p.Port.Type == intstr.String:
		return p.Port.StrVal != "" && sp.Name == p.Port.StrVal
	case p.EndPort != nil:
		return sp.Port >= p.Port.IntVal && sp.Port <= *p.EndPort
	default:
		return sp.Port == p.Port.IntVal
	}
}

func protocolOf(p v1alpha1.Port) corev1.Protocol {
	return v1alpha1.ProtocolOrTCP(p.Protocol)
}

// declaredPorts copies allowlist ports into NetworkPolicy ports in declared
// order, with the protocol made explicit (TCP when unset), as the API server
// would default it.
func declaredPorts(ports []v1alpha1.Port) []networkingv1.NetworkPolicyPort {
	if len(ports) == 0 {
		return nil
	}
	out := make([]networkingv1.NetworkPolicyPort, 0, len(ports))
	for _, p := range ports {
		np := networkingv1.NetworkPolicyPort{Protocol: ptr.To(protocolOf(p))}
		if p.Port != nil {
			np.Port = ptr.To(*p.Port)
		}
		if p.EndPort != nil {
			np.EndPort = ptr.To(*p.EndPort)
		}
		out = append(out, np)
	}
	return out
}

// portsKey identifies a port list; nil (every port) differs from any list.
func portsKey(ports []networkingv1.NetworkPolicyPort) string {
	if ports == nil {
		return "*"
	}
	keys := make([]string, len(ports))
	for i, p := range ports {
		keys[i] = portKey(p)
	}
	return strings.Join(keys, ",")
}

func clonePorts(ports []networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort {
	if len(ports) == 0 {
		return nil
	}
	out := make([]networkingv1.NetworkPolicyPort, len(ports))
	for i, p := range ports {
		out[i] = *p.DeepCopy()
	}
	return out
}

func cloneNonEmpty(values []string) []string {
	if len(values) == 0 {
		return nil
	}
	return append([]string(nil), values...)
}

func describePort(p v1alpha1.Port) string {
	protocol := protocolOf(p)
	switch {
	case p.Port == nil:
		return fmt.Sprintf("every %s port", protocol)
	case p.Port.Type == intstr.Int && p.EndPort != nil:
		return fmt.Sprintf("port range %d-%d/%s", p.Port.IntVal, *p.EndPort, protocol)
	case p.Port.Type == intstr.Int:
		return fmt.Sprintf("port %d/%s", p.Port.IntVal, protocol)
	default:
		return fmt.Sprintf("port %q/%s", p.Port.StrVal, protocol)
	}
}

func describeServicePorts(ports []corev1.ServicePort) string {
	if len(ports) == 0 {
		return "none"
	}
	parts := make([]string, len(ports))
	for i, sp := range ports {
		parts[i] = fmt.Sprintf("%d/%s", sp.Port, serviceProtocol(sp))
		if sp.Name != "" {
			parts[i] += fmt.Sprintf(" %q", sp.Name)
		}
	}
	return strings.Join(parts, ", ")
}
