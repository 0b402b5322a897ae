package validation

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

// The Service through which pods reach the Kubernetes API server; it has no
// selector, and the kubernetesAPI peer replaces it.
const (
	kubernetesAPINamespace = "default"
	kubernetesAPIName      = "kubernetes"
)

// checkIngressServicePorts warns about ingress ports that look like Service
// ports: a numeric port that a Service of the namespace exposes and forwards
// to a different target port, while no Service of the namespace has it as a
// target port. NetworkPolicy matches the pods' ports, so such a rule admits
// nothing the user meant; the warning names the target port to write.
func (v *allowlistValidator) checkIngressServicePorts(ports []v1alpha1.Port, fldPath *field.Path) {
	if v.cluster == nil || v.nal.Namespace == "" || len(ports) == 0 {
		return
	}
	for i, p := range ports {
		if p.Port == nil || p.Port.Type != intstr.Int || p.EndPort != nil {
			continue
		}
		services, ok := v.namespaceServices(fldPath, "so the ports were not compared with theirs")
		if !ok {
			return
		}
		if hint := servicePortHint(services, v1alpha1.ProtocolOrTCP(p.Protocol), p.Port.IntVal); hint != "" {
			v.warn(fldPath.Index(i).Child("port"), "%s", hint)
		}
	}
}

// servicePortHint explains which target ports to use instead of port, or
// returns "" when port is a target port itself or no Service exposes it.
func servicePortHint(services []*corev1.Service, protocol corev1.Protocol, port int32) string {
	var forwards []string
	for _, svc := range services {
		for _, sp := range svc.Spec.Ports {
			if v1alpha1.ProtocolOrTCP(&sp.Protocol) != protocol {
				continue
			}
			target := v1alpha1.TargetPort(sp)
			if target.Type == intstr.Int && target.IntVal == port {
				return ""
			}
			if sp.Port == port {
				forwards = append(forwards, fmt.Sprintf("Service %s forwards it to the pods' port %s", svc.Name, describeTarget(target)))
			}
		}
	}
	if len(forwards) == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%s is a Service port, not a pod port: %s. Ingress rules match the port on the pods (what NetworkPolicy sees), so this rule admits nothing on the Service; write the target port instead",
		port, protocol, strings.Join(forwards, "; "))
}

func describeTarget(target intstr.IntOrString) string {
	if target.Type == intstr.String {
		return fmt.Sprintf("%q (a named container port, which a rule may name as port: %s)", target.StrVal, target.StrVal)
	}
	return fmt.Sprintf("%d", target.IntVal)
}
