package v1alpha1

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPeerKinds(t *testing.T) {
	svc := &ServiceReference{Name: "nginx"}
	block := &IPBlock{CIDR: "10.0.0.0/8"}
	for _, tc := range []struct {
		peer Peer
		want []PeerKind
	}{
		{Peer{}, nil},
		{Peer{Namespace: "a"}, []PeerKind{PeerNamespace}},
		{Peer{Service: svc}, []PeerKind{PeerService}},
		{Peer{IPBlock: block}, []PeerKind{PeerIPBlock}},
		{Peer{IPBlock: block, Namespace: "a"}, []PeerKind{PeerNamespace, PeerIPBlock}},
		{Peer{Project: "team-a"}, []PeerKind{PeerProject}},
		{Peer{KubernetesAPI: &KubernetesAPIPeer{}}, []PeerKind{PeerKubeAPI}},
		{Peer{Project: "team-a", KubernetesAPI: &KubernetesAPIPeer{}}, []PeerKind{PeerProject, PeerKubeAPI}},
		{Peer{Namespace: "a", Service: svc, IPBlock: block, Project: "team-a", KubernetesAPI: &KubernetesAPIPeer{}}, PeerKinds},
	} {
		if got := tc.peer.Kinds(); !slices.Equal(got, tc.want) {
			t.Errorf("%+v.Kinds() = %v, want %v", tc.peer, got, tc.want)
		}
		kind, ok := tc.peer.Kind()
		if ok != (len(tc.want) == 1) || (ok && kind != tc.want[0]) {
			t.Errorf("%+v.Kind() = %q, %v", tc.peer, kind, ok)
		}
	}
}

func TestProjectOf(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"ws": "team-a", "empty": ""}}}
	for _, tc := range []struct {
		ns        *corev1.Namespace
		key, want string
		ok        bool
	}{
		{ns, "ws", "team-a", true},
		{ns, "", "", false},
		{ns, "empty", "", false},
		{ns, "absent", "", false},
		{nil, "ws", "", false},
		// No project label configured: no group, even for an object built
		// in Go with an empty label key (the API server refuses one).
		{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"": "x"}}}, "", "", false},
	} {
		if got, ok := ProjectOf(tc.ns, tc.key); got != tc.want || ok != tc.ok {
			t.Errorf("ProjectOf(%v, %q) = %q, %v; want %q, %v", tc.ns, tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func TestAdmitsGroup(t *testing.T) {
	withLabel := func(value string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{GroupIngressLabel: value}}}
	}
	for _, tc := range []struct {
		ns   *corev1.Namespace
		want bool
	}{
		{&corev1.Namespace{}, true},
		{withLabel("true"), true},
		{withLabel("false"), false},
		// Invalid values turn the group away: fail closed.
		{withLabel("False"), false},
		{withLabel(""), false},
		{nil, false},
	} {
		if got := AdmitsGroup(tc.ns); got != tc.want {
			t.Errorf("AdmitsGroup(%v) = %v, want %v", tc.ns, got, tc.want)
		}
	}
}

func TestUsesKubernetesAPI(t *testing.T) {
	spec := NetworkAllowlistSpec{Egress: []EgressRule{{To: []Peer{{Namespace: "a"}}}}}
	if spec.UsesKubernetesAPI() {
		t.Error("a namespace peer is not the API server")
	}
	spec.Egress = append(spec.Egress, EgressRule{To: []Peer{{IPBlock: &IPBlock{CIDR: "10.0.0.0/8"}}, {KubernetesAPI: &KubernetesAPIPeer{}}}})
	if !spec.UsesKubernetesAPI() {
		t.Error("the second rule's kubernetesAPI peer is not found")
	}
}

func TestServiceReferenceNamespaceIn(t *testing.T) {
	if got := (&ServiceReference{Name: "nginx"}).NamespaceIn("demo-project-1"); got != "demo-project-1" {
		t.Errorf("empty namespace: got %q, want the allowlist's", got)
	}
	if got := (&ServiceReference{Namespace: "demo-project-2", Name: "nginx"}).NamespaceIn("demo-project-1"); got != "demo-project-2" {
		t.Errorf("explicit namespace: got %q", got)
	}
}

func TestIsolated(t *testing.T) {
	ns := func(labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: labels}}
	}
	for _, tc := range []struct {
		ns   *corev1.Namespace
		want bool
	}{
		{nil, false},
		{ns(nil), false},
		{ns(map[string]string{IsolationLabel: "false"}), false},
		{ns(map[string]string{IsolationLabel: "yes"}), false},
		{ns(map[string]string{IsolationLabel: "True"}), false},
		{ns(map[string]string{IsolationLabel: "true"}), true},
	} {
		if got := Isolated(tc.ns); got != tc.want {
			t.Errorf("Isolated(%v) = %v, want %v", tc.ns, got, tc.want)
		}
	}
}

func TestSelectionOf(t *testing.T) {
	for _, tc := range []struct {
		spec corev1.ServiceSpec
		want ServiceSelection
	}{
		{corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}, ServiceSelectable},
		{corev1.ServiceSpec{}, ServiceWithoutSelector},
		{corev1.ServiceSpec{Selector: map[string]string{}}, ServiceWithoutSelector},
		{corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}, ServiceExternalName},
		{corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, Selector: map[string]string{"app": "web"}}, ServiceExternalName},
	} {
		if got := SelectionOf(&corev1.Service{Spec: tc.spec}); got != tc.want {
			t.Errorf("SelectionOf(%+v) = %v, want %v", tc.spec, got, tc.want)
		}
	}
}

func TestServiceRefs(t *testing.T) {
	a := &ServiceReference{Name: "a"}
	b := &ServiceReference{Namespace: "x", Name: "b"}
	spec := NetworkAllowlistSpec{
		Ingress: []IngressRule{{From: []Peer{{Namespace: "n"}, {Service: a}}}},
		Egress:  []EgressRule{{To: []Peer{{Service: b}, {Service: a}}}},
	}
	if got := spec.ServiceRefs(); !slices.Equal(got, []*ServiceReference{a, b, a}) {
		t.Errorf("ServiceRefs() = %v", got)
	}
}

func TestProtocolOrTCP(t *testing.T) {
	udp, empty := corev1.ProtocolUDP, corev1.Protocol("")
	for _, tc := range []struct {
		p    *corev1.Protocol
		want corev1.Protocol
	}{{nil, corev1.ProtocolTCP}, {&empty, corev1.ProtocolTCP}, {&udp, corev1.ProtocolUDP}} {
		if got := ProtocolOrTCP(tc.p); got != tc.want {
			t.Errorf("ProtocolOrTCP(%v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestTargetPort(t *testing.T) {
	for _, tc := range []struct {
		target intstr.IntOrString
		want   intstr.IntOrString
	}{
		{intstr.IntOrString{}, intstr.FromInt32(80)},
		{intstr.FromInt32(0), intstr.FromInt32(80)},
		{intstr.FromString(""), intstr.FromInt32(80)},
		{intstr.FromInt32(8080), intstr.FromInt32(8080)},
		{intstr.FromString("http"), intstr.FromString("http")},
	} {
		if got := TargetPort(corev1.ServicePort{Port: 80, TargetPort: tc.target}); got != tc.want {
			t.Errorf("TargetPort of port 80 to %v = %v, want %v", tc.target, got, tc.want)
		}
	}
}
