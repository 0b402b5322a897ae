package explain

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"moat.dev/moat/api/v1alpha1"
)

// Bounds of one explain: the pods an endpoint expands to and the ports
// checked per pair; past them the rest is left out and reported.
const (
	MaxEndpoints = 20
	MaxPorts     = 16
)

// Target is a resolved endpoint argument.
type Target struct {
	Spec Spec
	// Endpoints are what the argument names, at most MaxEndpoints; Total
	// counts them all.
	Endpoints []Endpoint
	Total     int
	// Service and ServicePorts are set when the argument names a Service:
	// its ports that the argument selects (all when it gives none).
	Service      *corev1.Service
	ServicePorts []corev1.ServicePort
	// Note says how the argument was read, when it is not obvious (the
	// pods of a Service that the objects do not hold, say).
	Note string
}

// Resolve finds what an endpoint argument names in the objects.
func (x *Index) Resolve(spec Spec) (Target, error) {
	t := Target{Spec: spec}
	var err error
	switch spec.Kind {
	case SpecAddress:
		t.Endpoints = []Endpoint{x.AddressEndpoint(spec.Prefix)}
	case SpecNode:
		n := x.nodes[spec.Name]
		if n == nil {
			return t, fmt.Errorf("node %s: no such Node", spec.Name)
		}
		var e Endpoint
		e, err = nodeEndpoint(n)
		t.Endpoints = []Endpoint{e}
	case SpecNamespace:
		err = x.resolveNamespace(&t)
	case SpecLabels:
		err = x.resolveLabels(&t)
	default:
		err = x.resolveNamed(&t)
	}
	if err != nil {
		return t, err
	}
	if t.Total == 0 {
		t.Total = len(t.Endpoints)
	}
	if len(t.Endpoints) > MaxEndpoints {
		t.Endpoints = t.Endpoints[:MaxEndpoints]
	}
	return t, nil
}

func (x *Index) resolveNamespace(t *Target) error {
	name := t.Spec.Namespace
	if x.namespaces[name] == nil && len(x.pods[name]) == 0 {
		if n := x.nodes[name]; n != nil {
			e, err := nodeEndpoint(n)
			t.Endpoints = []Endpoint{e}
			return err
		}
		return fmt.Errorf("namespace %s: neither a Namespace nor a Node of that name is known (write node/NAME for a node)", name)
	}
	t.Endpoints = podEndpoints(x.pods[name], labels.Everything())
	if len(t.Endpoints) == 0 {
		t.Endpoints = []Endpoint{hypotheticalPod(name, nil)}
		t.Note = fmt.Sprintf("no pod of namespace %s is known: a pod without labels stands for them", name)
	}
	return nil
}

func (x *Index) resolveLabels(t *Target) error {
	sel, err := labels.Parse(t.Spec.Selector)
	if err != nil {
		return fmt.Errorf("label selector %q: %v", t.Spec.Selector, err)
	}
	t.Endpoints = podEndpoints(x.pods[t.Spec.Namespace], sel)
	if len(t.Endpoints) > 0 {
		return nil
	}
	set, err := labels.ConvertSelectorToLabelsMap(t.Spec.Selector)
	if err != nil {
		return fmt.Errorf("no pod of namespace %s matches %q, and only KEY=VALUE selectors describe a pod that is not there: %v", t.Spec.Namespace, t.Spec.Selector, err)
	}
	t.Endpoints = []Endpoint{hypotheticalPod(t.Spec.Namespace, set)}
	t.Note = fmt.Sprintf("no pod of namespace %s matches %s: a pod with these labels stands for them", t.Spec.Namespace, t.Spec.Selector)
	return nil
}

// resolveNamed reads NAMESPACE/NAME as a Service, else as a pod. A Service
// is its pods (or, when none is known, a pod with its selector's labels)
// and its ports.
func (x *Index) resolveNamed(t *Target) error {
	ns, name := t.Spec.Namespace, t.Spec.Name
	svc := x.Service(ns, name)
	if svc == nil {
		p := x.podByName[types.NamespacedName{Namespace: ns, Name: name}]
		if p == nil {
			return fmt.Errorf("%s/%s: neither a Service nor a Pod of that name is known", ns, name)
		}
		t.Endpoints = []Endpoint{PodEndpoint(p)}
		return nil
	}
	if len(svc.Spec.Selector) == 0 {
		return fmt.Errorf("Service %s/%s has no selector: its endpoints are not pods that NetworkPolicies select; name the addresses instead", ns, name)
	}
	ports, err := servicePorts(svc, t.Spec)
	if err != nil {
		return err
	}
	t.Service, t.ServicePorts = svc, ports
	t.Endpoints = podEndpoints(x.pods[ns], labels.SelectorFromSet(svc.Spec.Selector))
	if len(t.Endpoints) == 0 {
		t.Endpoints = []Endpoint{hypotheticalPod(ns, svc.Spec.Selector)}
		t.Note = fmt.Sprintf("no pod of Service %s/%s is known: a pod with its selector's labels stands for them", ns, name)
	}
	return nil
}

// servicePorts returns the Service ports that spec selects: by number or
// name, every port when spec has none.
func servicePorts(svc *corev1.Service, spec Spec) ([]corev1.ServicePort, error) {
	if spec.Port == "" {
		return svc.Spec.Ports, nil
	}
	var out []corev1.ServicePort
	for _, sp := range svc.Spec.Ports {
		if (spec.Port == sp.Name || spec.Port == strconv.Itoa(int(sp.Port))) && (spec.Protocol == "" || spec.Protocol == v1alpha1.ProtocolOrTCP(&sp.Protocol)) {
			out = append(out, sp)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("Service %s/%s has no port %s%s: its ports are %s", svc.Namespace, svc.Name, spec.Port, protocolSuffix(spec.Protocol), describeServicePorts(svc))
	}
	return out, nil
}

func protocolSuffix(p corev1.Protocol) string {
	if p == "" {
		return ""
	}
	return "/" + string(p)
}

func describeServicePorts(svc *corev1.Service) string {
	var parts []string
	for _, sp := range svc.Spec.Ports {
		parts = append(parts, fmt.Sprintf("%d/%s", sp.Port, v1alpha1.ProtocolOrTCP(&sp.Protocol)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return fmt.Sprint(parts)
}

// podEndpoints are the pods that sel selects, by name.
func podEndpoints(pods []*corev1.Pod, sel labels.Selector) []Endpoint {
	var out []Endpoint
	for _, p := range pods {
		if sel.Matches(labels.Set(p.Labels)) {
			out = append(out, PodEndpoint(p))
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Ports returns the ports to check from src to the destination endpoint dst
// of target: the Service's target ports, the port given, or (none given) the
// destination's container ports, else the ports that the rules of the
// policies selecting either side name and any other TCP port. At most
// MaxPorts; more reports true.
func (x *Index) Ports(target Target, src, dst Endpoint) ([]Port, bool) {
	var out []Port
	switch {
	case target.Service != nil:
		for _, sp := range target.ServicePorts {
			out = append(out, targetPort(sp, dst.pod))
		}
	case target.Spec.Port != "":
		out = []Port{givenPort(target.Spec, dst.pod)}
	case dst.pod != nil && len(containerPorts(dst.pod)) > 0:
		out = containerPorts(dst.pod)
	default:
		out = append(x.rulePorts(src, dst), Port{Protocol: corev1.ProtocolTCP})
	}
	out = uniquePorts(out)
	if len(out) > MaxPorts {
		return out[:MaxPorts], true
	}
	return out, false
}

// targetPort is where a Service port forwards to on pod (nil: unknown).
func targetPort(sp corev1.ServicePort, pod *corev1.Pod) Port {
	proto := v1alpha1.ProtocolOrTCP(&sp.Protocol)
	tp := v1alpha1.TargetPort(sp)
	if tp.Type == intstr.Int {
		return Port{Protocol: proto, Number: tp.IntVal}
	}
	return resolveName(pod, tp.StrVal, proto)
}

// givenPort is the port of the argument, a name resolved on pod.
func givenPort(spec Spec, pod *corev1.Pod) Port {
	proto := spec.Protocol
	if n, err := strconv.Atoi(spec.Port); err == nil {
		p := Port{Protocol: v1alpha1.ProtocolOrTCP(&proto), Number: int32(n)}
		for _, cp := range allContainerPorts(pod) {
			if cp.ContainerPort == p.Number && v1alpha1.ProtocolOrTCP(&cp.Protocol) == p.Protocol {
				p.Name = cp.Name
			}
		}
		return p
	}
	if proto == "" {
		for _, cp := range allContainerPorts(pod) {
			if cp.Name == spec.Port {
				proto = v1alpha1.ProtocolOrTCP(&cp.Protocol)
			}
		}
	}
	return resolveName(pod, spec.Port, v1alpha1.ProtocolOrTCP(&proto))
}

// resolveName finds the container port called name on pod.
func resolveName(pod *corev1.Pod, name string, proto corev1.Protocol) Port {
	for _, cp := range allContainerPorts(pod) {
		if cp.Name == name && v1alpha1.ProtocolOrTCP(&cp.Protocol) == proto {
			return Port{Protocol: proto, Number: cp.ContainerPort, Name: name}
		}
	}
	return Port{Protocol: proto, Name: name}
}

func allContainerPorts(pod *corev1.Pod) []corev1.ContainerPort {
	if pod == nil {
		return nil
	}
	var out []corev1.ContainerPort
	for _, c := range pod.Spec.Containers {
		out = append(out, c.Ports...)
	}
	return out
}

func containerPorts(pod *corev1.Pod) []Port {
	var out []Port
	for _, cp := range allContainerPorts(pod) {
		out = append(out, Port{Protocol: v1alpha1.ProtocolOrTCP(&cp.Protocol), Number: cp.ContainerPort, Name: cp.Name})
	}
	return out
}

// rulePorts are the ports named by the rules of the policies that select
// src for egress and dst for ingress (a range by its first port).
func (x *Index) rulePorts(src, dst Endpoint) []Port {
	var out []Port
	for _, side := range []struct {
		dir Direction
		e   Endpoint
	}{{Egress, src}, {Ingress, dst}} {
		if side.e.Kind != KindPod {
			continue
		}
		for _, c := range x.policies[side.e.Namespace] {
			if c.selects(side.dir, side.e) {
				out = append(out, c.ports(side.dir, dst.pod)...)
			}
		}
	}
	return out
}

func (c *compiled) ports(dir Direction, dst *corev1.Pod) []Port {
	var out []Port
	visit := func(pp []networkingv1.NetworkPolicyPort) {
		for i := range pp {
			p := pp[i]
			proto := v1alpha1.ProtocolOrTCP(p.Protocol)
			switch {
			case p.Port == nil:
			case p.Port.Type == intstr.String:
				out = append(out, resolveName(dst, p.Port.StrVal, proto))
			default:
				out = append(out, Port{Protocol: proto, Number: p.Port.IntVal})
			}
		}
	}
	if dir == Egress {
		for _, r := range c.np.Spec.Egress {
			visit(r.Ports)
		}
	} else {
		for _, r := range c.np.Spec.Ingress {
			visit(r.Ports)
		}
	}
	return out
}

// uniquePorts drops repeated ports, keeping the first.
func uniquePorts(ports []Port) []Port {
	seen := map[Port]bool{}
	var out []Port
	for _, p := range ports {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// unresolvedNames are the port names that rules selecting either side name
// and that dst, a pod the objects do not hold, cannot number.
func (x *Index) unresolvedNames(src, dst Endpoint) []string {
	if dst.Kind != KindPod || dst.pod != nil {
		return nil
	}
	var names []string
	for _, p := range x.rulePorts(src, dst) {
		if p.Number == 0 && p.Name != "" && !slices.Contains(names, p.Name) {
			names = append(names, p.Name)
		}
	}
	return names
}
