package kubesphere

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	moatpolicy "moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// benchInput is a KubeSphere cluster of workspaces of 20 namespaces each,
// every workspace isolated, one namespace of each isolated on its own with a
// NamespaceNetworkPolicy, and as many namespaces again outside workspaces.
func benchInput(workspaces int) Input {
	var in Input
	for w := range workspaces {
		ws := fmt.Sprintf("ws-%d", w)
		in.Workspaces = append(in.Workspaces, Workspace{Name: ws, NetworkIsolation: true})
		for n := range 20 {
			ns := namespace(fmt.Sprintf("%s-ns-%d", ws, n), ws, nil)
			if n == 0 {
				ns.Annotations = map[string]string{IsolateAnnotation: IsolateEnabled}
				in.Policies = append(in.Policies, &NamespaceNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "np"},
					Spec: NamespaceNetworkPolicySpec{Ingress: []IngressRule{{From: []Peer{namespacePeer(fmt.Sprintf("%s-ns-1", ws))}}}}})
			}
			in.Namespaces = append(in.Namespaces, ns, namespace(fmt.Sprintf("plain-%d-%d", w, n), "", nil))
		}
	}
	return in
}

// BenchmarkConvert: the import's cost per namespace as the cluster grows
// (docs/benchmarks.md), with and without --project-label.
func BenchmarkConvert(b *testing.B) {
	for _, workspaces := range []int{25, 100, 400} {
		in := benchInput(workspaces)
		for _, label := range []string{"", WorkspaceLabel} {
			cfg := validation.Config{Policy: moatpolicy.Config{ProjectLabel: label}}
			b.Run(fmt.Sprintf("namespaces=%d/project-label=%s", len(in.Namespaces), label), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if r := Convert(in, cfg); len(r.Namespaces) != 20*workspaces {
						b.Fatalf("%d namespaces isolated, want %d", len(r.Namespaces), 20*workspaces)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(in.Namespaces)), "ns/namespace")
			})
		}
	}
}
