package corpus

import (
	"bytes"
	"fmt"
	"strings"
)

// The N × N shapes of issue 23 (case 6): inputs where each of N objects is
// checked against N others of the same namespace, which cost quadratic time
// while the lookups rescanned every object. moat validate reads both without
// an error (exit status 0). AliasBomb is case 5.

// crossNamespace is the isolated namespace of the N × N shapes.
const crossNamespace = "cross"

func crossNamespaceDoc() []byte {
	return fmt.Appendf(nil, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    moat.dev/isolated: \"true\"\n", crossNamespace)
}

// crossAllowlist returns the allowlist al-i of the N × N shapes: ingress
// from peer (YAML at the indentation of a peer) on TCP 80.
func crossAllowlist(i int, peer string) []byte {
	return fmt.Appendf(nil, `apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata:
  name: al-%d
  namespace: %s
spec:
  ingress:
  - from:
    - %s
    ports:
    - protocol: TCP
      port: 80
`, i, crossNamespace, peer)
}

// TenantCross returns one isolated namespace with n NetworkAllowlists, the
// i-th admitting ingress from namespace peer-i on TCP 80, and n tenant
// NetworkPolicies, the i-th admitting what the i-th allowlist admits (so the
// tenant rule refuses none of them); 2n+1 documents.
func TenantCross(n int) [][]byte {
	docs := [][]byte{crossNamespaceDoc()}
	for i := range n {
		docs = append(docs, crossAllowlist(i, fmt.Sprintf("namespace: peer-%d", i)))
	}
	for i := range n {
		docs = append(docs, fmt.Appendf(nil, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np-%d
  namespace: %s
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: peer-%d
    ports:
    - protocol: TCP
      port: 80
`, i, crossNamespace, i))
	}
	return docs
}

// ServicePortCross returns one isolated namespace with n Services, each
// forwarding port 80 to the pods' port 8080, and n NetworkAllowlists, each
// admitting ingress from an ipBlock on port 80: every allowlist is checked
// against every Service (port 80 is a Service port, not a pod port; the
// ipBlock loses its source address behind a NodePort Service); 2n+1
// documents.
func ServicePortCross(n int) [][]byte {
	docs := [][]byte{crossNamespaceDoc()}
	for i := range n {
		docs = append(docs, fmt.Appendf(nil, `apiVersion: v1
kind: Service
metadata:
  name: svc-%d
  namespace: %s
spec:
  type: NodePort
  selector:
    app: app-%d
  ports:
  - port: 80
    targetPort: 8080
`, i, crossNamespace, i))
	}
	for i := range n {
		docs = append(docs, crossAllowlist(i, fmt.Sprintf("ipBlock:\n        cidr: 203.0.%d.0/24", i%256)))
	}
	return docs
}

// AliasBomb returns issue 23's case 5: a Namespace whose finalizers alias
// one scalar of scalar bytes aliases+1 times; a few tens of kilobytes pass
// go-yaml's alias limit (which counts nodes) and expand to about scalar ×
// aliases bytes of JSON.
func AliasBomb(scalar, aliases int) []byte {
	var b bytes.Buffer
	b.WriteString("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bomb\n  annotations:\n    a: &a " + strings.Repeat("x", scalar) + "\n  finalizers: [")
	for range aliases {
		b.WriteString("*a, ")
	}
	b.WriteString("*a]\n")
	return b.Bytes()
}
