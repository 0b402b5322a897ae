package validation

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"moat.dev/moat/api/v1alpha1"
)

// The allowlist rules read two facts of a namespace: what its Services
// expose (ServiceFacts) and where its allowlists let traffic out
// (EgressFacts). Each is derived from the namespace's objects in one pass,
// so that a caller validating many allowlists at once (moat validate) derives
// it once per namespace through a FactSource (FactCache), and the cost stays
// linear in the number of objects; a Cluster that is not a FactSource has it
// derived for each allowlist.

// MaxListed is how many Services a warning names before it says how many
// more there are, so that a warning stays short however many Services a
// namespace has.
const MaxListed = 10

// FactSource is implemented by a Cluster that derives the facts of a
// namespace once for many validations.
type FactSource interface {
	ServiceFacts(namespace string) (*ServiceFacts, error)
	EgressFacts(namespace string) (*EgressFacts, error)
}

// ServiceFacts is what the allowlist rules read from the Services of one
// namespace.
type ServiceFacts struct {
	// targets holds the numeric target ports of every Service port.
	targets map[protocolPort]bool
	// forwards describes, for a Service port whose target differs, each
	// Service that forwards it, sorted by Service name.
	forwards map[protocolPort][]string
	// sourceLoss describes the NodePort and LoadBalancer Services with
	// externalTrafficPolicy Cluster, sorted.
	sourceLoss []string
}

type protocolPort struct {
	protocol corev1.Protocol
	port     int32
}

// NewServiceFacts derives the facts of the Services of one namespace (nil
// entries are ignored; the order does not matter).
func NewServiceFacts(services []*corev1.Service) *ServiceFacts {
	sorted := slices.DeleteFunc(slices.Clone(services), func(s *corev1.Service) bool { return s == nil })
	slices.SortFunc(sorted, func(a, b *corev1.Service) int { return strings.Compare(a.Name, b.Name) })
	f := &ServiceFacts{targets: map[protocolPort]bool{}, forwards: map[protocolPort][]string{}}
	for _, svc := range sorted {
		for _, sp := range svc.Spec.Ports {
			protocol := v1alpha1.ProtocolOrTCP(&sp.Protocol)
			target := v1alpha1.TargetPort(sp)
			if target.Type == intstr.Int {
				f.targets[protocolPort{protocol, target.IntVal}] = true
			}
			key := protocolPort{protocol, sp.Port}
			f.forwards[key] = append(f.forwards[key], fmt.Sprintf("Service %s forwards it to the pods' port %s", svc.Name, describeTarget(target)))
		}
		external := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
		if external && svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			f.sourceLoss = append(f.sourceLoss, fmt.Sprintf("%s (%s)", svc.Name, svc.Spec.Type))
		}
	}
	slices.Sort(f.sourceLoss)
	return f
}

// portHint explains which target ports to use instead of port, or returns ""
// when port is a target port itself or no Service exposes it.
func (f *ServiceFacts) portHint(protocol corev1.Protocol, port int32) string {
	key := protocolPort{protocol, port}
	if f.targets[key] || len(f.forwards[key]) == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%s is a Service port, not a pod port: %s. Ingress rules match the port on the pods (what NetworkPolicy sees), so this rule admits nothing on the Service; write the target port instead",
		port, protocol, listBounded(f.forwards[key], "; ", "Services forward it too"))
}

// listBounded joins the first MaxListed items with sep and says how many
// more there are (more names them).
func listBounded(items []string, sep, more string) string {
	if len(items) <= MaxListed {
		return strings.Join(items, sep)
	}
	return strings.Join(items[:MaxListed], sep) + fmt.Sprintf("%s%d more %s", sep, len(items)-MaxListed, more)
}

// EgressFacts is what the allowlist rules read from the allowlists of one
// namespace: whether they restrict its egress, and which namespaces their
// egress rules reach (a namespace peer, or a Service peer in it).
type EgressFacts struct {
	restricted bool
	reaches    map[string]bool
}

// NewEgressFacts derives the egress facts of the allowlists of namespace
// (nil entries are ignored).
func NewEgressFacts(namespace string, allowlists []*v1alpha1.NetworkAllowlist) *EgressFacts {
	f := &EgressFacts{reaches: map[string]bool{}}
	for _, al := range allowlists {
		if al == nil || len(al.Spec.Egress) == 0 {
			continue
		}
		f.restricted = true
		alNamespace := cmp.Or(al.Namespace, namespace)
		for _, rule := range al.Spec.Egress {
			for _, to := range rule.To {
				switch {
				case to.Namespace != "":
					f.reaches[to.Namespace] = true
				case to.Service != nil:
					f.reaches[to.Service.NamespaceIn(alNamespace)] = true
				}
			}
		}
	}
	return f
}

// blocks reports whether the namespace restricts its egress without a rule
// that reaches namespace.
func (f *EgressFacts) blocks(namespace string) bool {
	return f.restricted && !f.reaches[namespace]
}

// FactCache is a FactSource that derives each namespace's facts from a
// Cluster's Services and Allowlists once (never through the Cluster's own
// FactSource, so a Cluster may serve its FactSource with a FactCache over
// itself), and answers every later call from memory: for callers that
// validate many objects against objects that do not change meanwhile (moat
// validate's manifests). Failed lookups are not remembered. It is safe for
// concurrent use.
type FactCache struct {
	cluster  Cluster
	mu       sync.Mutex
	services map[string]*ServiceFacts
	egress   map[string]*EgressFacts
}

var _ FactSource = (*FactCache)(nil)

// NewFactCache returns a FactCache over cluster.
func NewFactCache(cluster Cluster) *FactCache {
	return &FactCache{cluster: cluster, services: map[string]*ServiceFacts{}, egress: map[string]*EgressFacts{}}
}

// ServiceFacts returns the facts of the Services of namespace.
func (c *FactCache) ServiceFacts(namespace string) (*ServiceFacts, error) {
	return cached(&c.mu, c.services, namespace, func() (*ServiceFacts, error) { return deriveServiceFacts(c.cluster, namespace) })
}

// EgressFacts returns the egress facts of the allowlists of namespace.
func (c *FactCache) EgressFacts(namespace string) (*EgressFacts, error) {
	return cached(&c.mu, c.egress, namespace, func() (*EgressFacts, error) { return deriveEgressFacts(c.cluster, namespace) })
}

func cached[T any](mu *sync.Mutex, m map[string]*T, key string, derive func() (*T, error)) (*T, error) {
	mu.Lock()
	defer mu.Unlock()
	if f, ok := m[key]; ok {
		return f, nil
	}
	f, err := derive()
	if err == nil {
		m[key] = f
	}
	return f, err
}

// serviceFacts returns the Services' facts of a namespace: from cluster
// when it is a FactSource, else derived from its Services.
func serviceFacts(cluster Cluster, namespace string) (*ServiceFacts, error) {
	if fs, ok := cluster.(FactSource); ok {
		return fs.ServiceFacts(namespace)
	}
	return deriveServiceFacts(cluster, namespace)
}

// egressFacts returns the egress facts of a namespace: from cluster when it
// is a FactSource, else derived from its allowlists.
func egressFacts(cluster Cluster, namespace string) (*EgressFacts, error) {
	if fs, ok := cluster.(FactSource); ok {
		return fs.EgressFacts(namespace)
	}
	return deriveEgressFacts(cluster, namespace)
}

func deriveServiceFacts(cluster Cluster, namespace string) (*ServiceFacts, error) {
	services, err := cluster.Services(namespace)
	if err != nil {
		return nil, err
	}
	return NewServiceFacts(services), nil
}

func deriveEgressFacts(cluster Cluster, namespace string) (*EgressFacts, error) {
	allowlists, err := cluster.Allowlists(namespace)
	if err != nil {
		return nil, err
	}
	return NewEgressFacts(namespace, allowlists), nil
}
