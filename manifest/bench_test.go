package manifest

import (
	"bytes"
	"fmt"
	"testing"

	"sigs.k8s.io/yaml"

	"moat.dev/moat/validation"
)

// largeInput returns nps NetworkPolicies and nals NetworkAllowlists (plus the
// Namespaces and Services they name) as one multi-document YAML stream.
func largeInput(nps, nals int) []byte {
	var b bytes.Buffer
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-%d\n  labels:\n    moat.dev/isolated: \"true\"\n---\n", i)
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: ns-%d\nspec:\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\n", i)
	}
	for i := 0; i < nps; i++ {
		fmt.Fprintf(&b, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np-%d
  namespace: ns-%d
  labels:
    app: web
spec:
  podSelector:
    matchLabels:
      app: web
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: ns-%d
    - ipBlock:
        cidr: 192.168.%d.0/24
        except: [192.168.%d.128/25]
    ports:
    - protocol: TCP
      port: 8080
  egress:
  - to:
    - ipBlock:
        cidr: 10.%d.0.0/16
    ports:
    - protocol: UDP
      port: 53
      endPort: 60
---
`, i, i%10, (i+1)%10, i%256, i%256, i%256)
	}
	for i := 0; i < nals; i++ {
		fmt.Fprintf(&b, `apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata:
  name: al-%d
  namespace: ns-%d
spec:
  ingress:
  - from:
    - namespace: ns-%d
    - ipBlock:
        cidr: 172.16.%d.0/24
    ports:
    - protocol: TCP
      port: 80
  egress:
  - to:
    - service:
        namespace: ns-%d
        name: web
    ports:
    - port: 80
---
`, i, i%10, (i+3)%10, i%256, (i+1)%10)
	}
	return b.Bytes()
}

// BenchmarkCheckLarge reads and validates 10,000 NetworkPolicies and 1,000
// NetworkAllowlists, the size `moat validate` must handle in under a second.
func BenchmarkCheckLarge(b *testing.B) {
	in := largeInput(10000, 1000)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		x, findings, err := Check([]string{Stdin}, bytes.NewReader(in), nil, validation.Config{TenantNetworkPolicies: validation.TenantPoliciesOff})
		if err != nil {
			b.Fatal(err)
		}
		if x.ObjectsRead != 11020 || len(x.Errors) != 0 {
			b.Fatalf("read %d objects, %d errors", x.ObjectsRead, len(x.Errors))
		}
		for _, f := range findings {
			if f.Severity == SeverityError {
				b.Fatalf("unexpected error: %s", f)
			}
		}
	}
}

// largeList returns the documents of largeInput as one List, in JSON (as
// `kubectl get -o json` prints it) or YAML.
func largeList(b *testing.B, asYAML bool) []byte {
	var items [][]byte
	for _, doc := range bytes.Split(largeInput(10000, 1000), []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			b.Fatal(err)
		}
		items = append(items, js)
	}
	list := append([]byte(`{"apiVersion": "v1", "kind": "List", "items": [`+"\n"), bytes.Join(items, []byte(",\n"))...)
	list = append(list, "\n]}\n"...)
	if asYAML {
		y, err := yaml.JSONToYAML(list)
		if err != nil {
			b.Fatal(err)
		}
		return y
	}
	return list
}

func benchmarkList(b *testing.B, asYAML bool) {
	in := largeList(b, asYAML)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		x, _, err := Check([]string{Stdin}, bytes.NewReader(in), nil, validation.Config{TenantNetworkPolicies: validation.TenantPoliciesOff})
		if err != nil {
			b.Fatal(err)
		}
		if x.ObjectsRead != 11020 || len(x.Errors) != 0 {
			b.Fatalf("read %d objects, %d errors", x.ObjectsRead, len(x.Errors))
		}
	}
}

// BenchmarkCheckJSONList reads and validates the large input as one JSON List.
func BenchmarkCheckJSONList(b *testing.B) { benchmarkList(b, false) }

// BenchmarkCheckYAMLList reads and validates the large input as one YAML List.
func BenchmarkCheckYAMLList(b *testing.B) { benchmarkList(b, true) }
