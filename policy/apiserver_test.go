package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"moat.dev/moat/api/v1alpha1"
)

// TestRenderedPoliciesRoundTrip stores every rendered policy of the golden
// scenarios, plus a policy using every field moat generates, in a real
// kube-apiserver and reads it back: the API server must accept each one and
// return exactly what was rendered (no defaulting, no nil/empty flips), so
// that the controller comparing rendered and live policies never writes
// without a change.
func TestRenderedPoliciesRoundTrip(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join("..", "bin")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		t.Fatalf("kube-apiserver not found in %s (set KUBEBUILDER_ASSETS or run `make control-plane`): %v", assets, err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	rendered := map[string]Result{}
	inputs, err := filepath.Glob(filepath.Join("testdata", "*", "input.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cluster := readManifests(t, filepath.Join("testdata", "cluster.yaml"))
	for _, input := range inputs {
		m := readManifests(t, input)
		name := filepath.Base(filepath.Dir(input))
		m.namespace.Name = name
		m.namespace.Labels[v1alpha1.IsolationLabel] = "true"
		result, err := Render(Input{Namespace: m.namespace, Allowlists: m.allowlists}, servicesOf(append(m.services, cluster.services...)...), goldenConfig())
		if err != nil {
			t.Fatal(err)
		}
		rendered[name] = result
	}
	every := allowlist(longName(250), v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{
			ingress(peers(nsRef("demo-project-2"), svcRef("demo-project-2", "nginx"), cidrRef("2001:db8::/64", "2001:db8::/96")),
				namedPort(corev1.ProtocolTCP, "metrics"), v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolSCTP)}),
		},
		Egress: []v1alpha1.EgressRule{
			egress(peers(cidrRef("10.0.0.0/8", "10.1.0.0/16")),
				v1alpha1.Port{Port: ptr.To(intstr.FromInt32(30000)), EndPort: ptr.To[int32](32767)}),
			egress(peers(svcRef("demo-project-2", "nginx"))),
			egress(peers(svcRef("demo-project-2", "missing"))),
		},
	})
	result, err := Render(Input{Namespace: isolatedNamespace("every-field"), Allowlists: []*v1alpha1.NetworkAllowlist{every}},
		servicesOf(kubeDNS(), nginx()), Config{DNSService: ptr.To(DefaultDNSService)})
	if err != nil {
		t.Fatal(err)
	}
	rendered["every-field"] = result

	for ns, result := range rendered {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, want := range result.Policies {
			if _, err := client.NetworkingV1().NetworkPolicies(ns).Create(ctx, &want, metav1.CreateOptions{}); err != nil {
				t.Errorf("%s/%s: the API server rejects the rendered policy: %v", ns, want.Name, err)
				continue
			}
			got, err := client.NetworkingV1().NetworkPolicies(ns).Get(ctx, want.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(comparable(want), comparable(*got)); diff != "" {
				t.Errorf("%s/%s changed on its way through the API server (-rendered +stored):\n%s", ns, want.Name, diff)
			}
		}
	}
}

// comparable keeps what moat renders: name, namespace, labels, owner
// references and spec.
func comparable(np networkingv1.NetworkPolicy) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:            np.Name,
			Namespace:       np.Namespace,
			Labels:          np.Labels,
			OwnerReferences: np.OwnerReferences,
		},
		Spec: np.Spec,
	}
}
