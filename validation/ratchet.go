package validation

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// stored holds, by value, what the stored object of an update already
// contains: the values a rule may ratchet (see ratchet). Values are matched
// wherever they stand in the object, so removing a rule (which shifts the
// indices of the rules after it) keeps the values of those rules.
type stored struct {
	ports    map[portValue]bool
	ipBlocks map[string]bool
	// services holds "namespace/name" of Service peers, namespaces the
	// names of namespace peers.
	services   map[string]bool
	namespaces map[string]bool
}

func newStored() *stored {
	return &stored{ports: map[portValue]bool{}, ipBlocks: map[string]bool{}, services: map[string]bool{}, namespaces: map[string]bool{}}
}

// portValue identifies a port entry (of an allowlist or a NetworkPolicy) by value.
type portValue struct {
	protocol       corev1.Protocol
	hasPort        bool
	port           intstr.IntOrString
	hasEnd         bool
	endPort        int32
	protocolIsNull bool
}

func portValueOf(protocol *corev1.Protocol, port *intstr.IntOrString, endPort *int32) portValue {
	v := portValue{protocolIsNull: protocol == nil}
	if protocol != nil {
		v.protocol = *protocol
	}
	if port != nil {
		v.hasPort, v.port = true, *port
	}
	if endPort != nil {
		v.hasEnd, v.endPort = true, *endPort
	}
	return v
}

func ipBlockValue(cidr string, except []string) string {
	return cidr + "\x00" + strings.Join(except, "\x00")
}

// The has* methods of a nil *stored (a create) report false.

func (s *stored) hasPort(v portValue) bool      { return s != nil && s.ports[v] }
func (s *stored) hasIPBlock(v string) bool      { return s != nil && s.ipBlocks[v] }
func (s *stored) hasService(key string) bool    { return s != nil && s.services[key] }
func (s *stored) hasNamespace(name string) bool { return s != nil && s.namespaces[name] }
