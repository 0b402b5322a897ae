// Package corpus generates the deterministic benchmark corpus of `moat
// validate` (issue 8): the rendered GitOps repository of a platform team, with
// N NetworkPolicies, N/10 NetworkAllowlists, the Services the allowlists name
// and the Namespaces everything lives in.
//
// The same Options always produce byte-identical documents, so figures taken
// on different machines or days measure the same input.
//
// Shape, for Options{NetworkPolicies: N}:
//
//   - Namespaces: max(1, N/100) projects bench-0 … bench-(P-1), each labelled
//     moat.dev/isolated: "true", and the gateway namespace (not isolated)
//     that every allowlist lets in.
//   - NetworkPolicies np-0 … np-(N-1), spread over the namespaces: ingress from
//     a namespace peer plus an ipBlock peer, egress to an ipBlock with an
//     except. Every tenth (i%10 == 9) also allows an SCTP port, which moat
//     rejects unless --sctp-enabled: the "single SCTP rule" of the issue.
//   - NetworkAllowlists al-0 … al-(A-1), A = max(1, N/10): ingress from the
//     gateway namespace and an ipBlock, egress to two Services (one in the same
//     project, one in another) on their port 80.
//   - Services svc-0 … svc-(A-1), one per allowlist, with a selector and port
//     80 → 8080, in the allowlist's namespace.
//
// With the default validation configuration (SCTP off) and the tenant
// NetworkPolicy rule off (the policies are the platform team's, who are
// admins; moat validate --tenant-network-policies=off) every SCTP policy is
// rejected with one error and nothing else is reported.
package corpus

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Options size the corpus.
type Options struct {
	// NetworkPolicies is N, the number of NetworkPolicies; everything else
	// is derived from it. Values below 10 are raised to 10.
	NetworkPolicies int
}

// Counts is how many objects of each kind a corpus holds.
type Counts struct {
	Namespaces, NetworkPolicies, Allowlists, Services int
	// SCTPPolicies is the number of NetworkPolicies with an SCTP port.
	SCTPPolicies int
}

// Total is the number of objects (documents) in the corpus.
func (c Counts) Total() int {
	return c.Namespaces + c.NetworkPolicies + c.Allowlists + c.Services
}

// CountsOf returns the sizes that Options o produce.
func CountsOf(o Options) Counts {
	n := max(o.NetworkPolicies, 10)
	return Counts{
		Namespaces:      max(1, n/100) + 1,
		NetworkPolicies: n,
		Allowlists:      max(1, n/10),
		Services:        max(1, n/10),
		SCTPPolicies:    n / 10,
	}
}

// Documents returns every object of the corpus as its own YAML document
// (without "---" separators), in a fixed order: Namespaces, Services,
// NetworkPolicies, NetworkAllowlists.
func Documents(o Options) [][]byte {
	c := CountsOf(o)
	docs := make([][]byte, 0, c.Total())
	var b bytes.Buffer
	emit := func() {
		docs = append(docs, bytes.Clone(b.Bytes()))
		b.Reset()
	}
	projects := c.Namespaces - 1
	ns := func(i int) string { return fmt.Sprintf("bench-%d", i%projects) }

	b.WriteString("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: gateway\n")
	emit()
	for i := 0; i < projects; i++ {
		fmt.Fprintf(&b, `apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    moat.dev/isolated: "true"
`, ns(i))
		emit()
	}
	for i := 0; i < c.Services; i++ {
		fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata:
  name: svc-%d
  namespace: %s
spec:
  selector:
    app: svc-%d
  ports:
  - name: http
    protocol: TCP
    port: 80
    targetPort: 8080
`, i, ns(i), i)
		emit()
	}
	for i := 0; i < c.NetworkPolicies; i++ {
		sctp := ""
		if i%10 == 9 {
			sctp = "    - protocol: SCTP\n      port: 3868\n"
		}
		fmt.Fprintf(&b, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np-%d
  namespace: %s
  labels:
    app.kubernetes.io/part-of: bench
spec:
  podSelector:
    matchLabels:
      app: web-%d
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: %s
    - ipBlock:
        cidr: 192.168.%d.0/24
    ports:
    - protocol: TCP
      port: 8080
%s  egress:
  - to:
    - ipBlock:
        cidr: 10.%d.0.0/16
        except:
        - 10.%d.%d.0/24
    ports:
    - protocol: TCP
      port: 443
`, i, ns(i), i%50, ns(i+1), i%256, sctp, 16+i%100, 16+i%100, i%256)
		emit()
	}
	for i := 0; i < c.Allowlists; i++ {
		other := (i + 1) % c.Services
		fmt.Fprintf(&b, `apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata:
  name: al-%d
  namespace: %s
spec:
  ingress:
  - from:
    - namespace: gateway
    - ipBlock:
        cidr: 172.16.%d.0/24
    ports:
    - protocol: TCP
      port: 8080
  egress:
  - to:
    - service:
        name: svc-%d
    - service:
        namespace: %s
        name: svc-%d
    ports:
    - port: 80
`, i, ns(i), i%256, i, ns(other), other)
		emit()
	}
	return docs
}

// Write writes the documents in order as one multi-document YAML stream.
func Write(w io.Writer, docs [][]byte) error {
	for i, d := range docs {
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(d); err != nil {
			return err
		}
	}
	return nil
}

// WriteDir writes the corpus into dir as a rendered repository would look:
// one file per kind and namespace-sized chunk (at most perFile documents per
// file; perFile <= 0 means one file), named so that they sort in generation
// order. It returns the file names.
func WriteDir(dir string, docs [][]byte, perFile int) ([]string, error) {
	if perFile <= 0 {
		perFile = len(docs)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for start := 0; start < len(docs); start += perFile {
		end := min(start+perFile, len(docs))
		name := filepath.Join(dir, fmt.Sprintf("part-%05d.yaml", start/perFile))
		var b bytes.Buffer
		if err := Write(&b, docs[start:end]); err != nil {
			return nil, err
		}
		if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
			return nil, err
		}
		files = append(files, name)
	}
	return files, nil
}
