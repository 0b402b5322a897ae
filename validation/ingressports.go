package validation

import (
	"fmt"

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
		if hint := services.portHint(v1alpha1.ProtocolOrTCP(p.Protocol), p.Port.IntVal); hint != "" {
			v.warn(fldPath.Index(i).Child("port"), "%s", hint)
		}
	}
}

func describeTarget(target intstr.IntOrString) string {
	if target.Type == intstr.String {
		return fmt.Sprintf("%q (a named container port, which a rule may name as port: %s)", target.StrVal, target.StrVal)
	}
	return fmt.Sprintf("%d", target.IntVal)
}
