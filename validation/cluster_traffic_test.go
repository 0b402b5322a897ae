package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

func TestValidateNetworkAllowlistClusterTraffic(t *testing.T) {
	runAllowlistCases(t, allowlistClusterTrafficCases())
}

// allowlistClusterTrafficCases cover project and kubernetesAPI peers and the
// ingress Service-port warning; they are also fuzz seeds.
func allowlistClusterTrafficCases() []allowlistCase {
	workspace := Config{Policy: policy.Config{ProjectLabel: "kubesphere.io/workspace"}}
	from0 := ingress0.Child("from").Index(0)
	to0 := egress0.Child("to").Index(0)
	port0 := ingress0.Child("ports").Index(0).Child("port")
	kubeAPI := v1alpha1.Peer{KubernetesAPI: &v1alpha1.KubernetesAPIPeer{}}
	// web forwards 8000 to the pods' 8080 and 443 to the named port https.
	web := func(c *mapCluster) {
		c.add(service("demo-project-1", "web", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8000, TargetPort: intstr.FromInt32(8080)},
				{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromString("https")},
			}
		}))
	}
	setIngressPort := func(p int32) func(*v1alpha1.NetworkAllowlist) {
		return func(n *v1alpha1.NetworkAllowlist) { n.Spec.Ingress[0].Ports[0].Port = ptr.To(intstr.FromInt32(p)) }
	}
	return []allowlistCase{
		{name: "project peer with a project label", cfg: workspace, tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Ingress[0].From[0] = v1alpha1.Peer{Project: "team-a"}
		}},
		{name: "project peer without a project label", tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Ingress[0].From[0] = v1alpha1.Peer{Project: "team-a"}
		}, wantWarnings: []string{from0.Child("project").String() +
			": moat has no project label (--project-label), so project team-a selects no namespace and the peer is left out; set --project-label (e.g. kubesphere.io/workspace) or use namespace peers"}},
		{name: "project peer that is no label value", cfg: workspace, tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Ingress[0].From[0] = v1alpha1.Peer{Project: "team a"}
		}, wantErrs: field.ErrorList{field.Invalid(from0.Child("project"), "team a",
			"a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")}},
		{name: "project and namespace in one peer", cfg: workspace, tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Ingress[0].From[0].Project = "team-a"
		}, wantErrs: field.ErrorList{field.Forbidden(from0,
			"sets namespace and project: a peer must set exactly one of namespace, service, ipBlock, project or kubernetesAPI; write one peer per kind")}},
		{name: "kubernetesAPI egress peer in a rule of its own", tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Egress[0] = v1alpha1.EgressRule{To: []v1alpha1.Peer{kubeAPI}}
		}},
		{name: "kubernetesAPI egress peer in a rule with ports", tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Egress[0].To[0] = kubeAPI
		}, wantWarnings: []string{to0.Child("kubernetesAPI").String() +
			": the rule's ports do not apply to the API server: moat allows the ports of its EndpointSlices (e.g. 6443); put kubernetesAPI in a rule of its own to keep this clear"}},
		{name: "kubernetesAPI as an ingress peer", tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Ingress[0].From[0] = kubeAPI
		}, wantErrs: field.ErrorList{field.Forbidden(from0.Child("kubernetesAPI"),
			"kubernetesAPI is an egress peer: the API server is reached from the project, it does not connect into it; move it to an egress rule")}},
		{name: "default/kubernetes as a Service peer suggests kubernetesAPI", tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Egress[0].To[0].Service = &v1alpha1.ServiceReference{Namespace: "default", Name: "kubernetes"}
		}, cluster: func(c *mapCluster) {
			c.add(service("default", "kubernetes", func(s *corev1.Service) { s.Spec.Selector = nil }))
		}, wantErrs: field.ErrorList{field.Invalid(to0.Child("service"), "default/kubernetes",
			"Service default/kubernetes is the Kubernetes API server and has no selector: NetworkPolicy cannot select its endpoints; use the peer kubernetesAPI: {} instead, which follows the API server's addresses")}},
		{name: "ingress on a Service port whose target port differs", tweak: setIngressPort(8000), cluster: web,
			wantWarnings: []string{port0.String() + ": 8000/TCP is a Service port, not a pod port: Service web forwards it to the pods' port 8080. " +
				"Ingress rules match the port on the pods (what NetworkPolicy sees), so this rule admits nothing on the Service; write the target port instead"}},
		{name: "ingress on a Service port whose target port is named", tweak: setIngressPort(443), cluster: web,
			wantWarnings: []string{port0.String() + `: 443/TCP is a Service port, not a pod port: Service web forwards it to the pods' port "https" (a named container port, which a rule may name as port: https). ` +
				"Ingress rules match the port on the pods (what NetworkPolicy sees), so this rule admits nothing on the Service; write the target port instead"}},
		{name: "ingress on the target port", tweak: setIngressPort(8080), cluster: web},
		// validAllowlist's own Service api exposes 80 on the pods' port 80.
		{name: "ingress on a port that another Service targets", cluster: web, tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Ingress[0].Ports = append(n.Spec.Ingress[0].Ports, v1alpha1.Port{Port: ptr.To(intstr.FromInt32(8080))})
		}},
		{name: "ingress on a Service port of another protocol", tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Ingress[0].Ports[0] = v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(8000))}
		}, cluster: web},
	}
}

func TestValidateProjectLabel(t *testing.T) {
	const key = "kubesphere.io/workspace"
	ns := func(labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: labels}}
	}
	forbidden := field.ErrorList{field.Forbidden(field.NewPath("metadata", "labels").Key(key),
		key+" puts the namespace into a project (a group of namespaces that admit each other's traffic), so only cluster admins and the trusted controllers of moat's --project-label-writers may set, change or remove it; ask them to move the namespace")}
	for _, tc := range []struct {
		name     string
		ns, old  *corev1.Namespace
		key      string
		mayWrite bool
		want     field.ErrorList
	}{
		{"create with the label", ns(map[string]string{key: "team-a"}), nil, key, false, forbidden},
		{"create with the label, trusted", ns(map[string]string{key: "team-a"}), nil, key, true, nil},
		{"create without the label", ns(map[string]string{"x": "y"}), nil, key, false, nil},
		{"set it", ns(map[string]string{key: "team-a"}), ns(nil), key, false, forbidden},
		{"change it", ns(map[string]string{key: "team-b"}), ns(map[string]string{key: "team-a"}), key, false, forbidden},
		{"change it, trusted", ns(map[string]string{key: "team-b"}), ns(map[string]string{key: "team-a"}), key, true, nil},
		{"remove it", ns(nil), ns(map[string]string{key: "team-a"}), key, false, forbidden},
		{"set it to empty", ns(map[string]string{key: ""}), ns(nil), key, false, forbidden},
		{"keep it, change another label", ns(map[string]string{key: "team-a", "x": "1"}), ns(map[string]string{key: "team-a"}), key, false, nil},
		{"no project label configured", ns(map[string]string{key: "team-b"}), ns(nil), "", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFindings(t, ValidateProjectLabel(tc.ns, tc.old, tc.key, tc.mayWrite), nil, tc.want, nil)
		})
	}
}
