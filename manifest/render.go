package manifest

import (
	"fmt"
	"io"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// ClusterSource is the file name of findings about objects that come from the
// live cluster rather than from a manifest.
const ClusterSource = "<cluster>"

// Rendered is what moat would own for the manifests.
type Rendered struct {
	// Policies are the NetworkPolicies, sorted by namespace, then name.
	Policies []networkingv1.NetworkPolicy
	// AdminTier are the admin-tier objects (policy.Config.Enforcement),
	// by namespace, each namespace's main object first.
	AdminTier []policy.AdminTierObject
}

// Documents are the rendered objects as documents of a stream: the
// NetworkPolicies, then the admin-tier objects.
func (r Rendered) Documents() []any {
	docs := make([]any, 0, len(r.Policies)+len(r.AdminTier))
	for i := range r.Policies {
		docs = append(docs, &r.Policies[i])
	}
	for _, o := range r.AdminTier {
		docs = append(docs, o)
	}
	return docs
}

// Render computes the NetworkPolicies (and, with an admin-tier
// cfg.Enforcement, the admin-tier objects) that moat would own for every namespace
// of the index that is isolated: the Namespaces of the manifests, and the
// namespaces of the manifests' allowlists (looked up in the live cluster
// when the manifests do not define them). Node addresses and the API
// server's endpoints come from the Nodes and EndpointSlices of the manifests
// and of the live cluster. Policies are sorted by namespace,
// then name. The findings are warnings: parts of allowlists that are not in
// force (a dropped Service peer, an allowlist in a namespace that is not
// isolated or not defined). The error is a failed live lookup.
func Render(x *Index, cfg policy.Config) (Rendered, []Finding, error) {
	names := map[string]bool{}
	for name := range x.namespaces {
		names[name] = true
	}
	for key := range x.allowlists {
		names[key.Namespace] = true
	}
	sorted := make([]string, 0, len(names))
	for name := range names {
		sorted = append(sorted, name)
	}
	sort.Strings(sorted)

	var (
		out      Rendered
		findings []Finding
	)
	facts, err := x.clusterFacts(cfg)
	if err != nil {
		return Rendered{}, nil, err
	}
	for _, name := range sorted {
		ns, err := x.Namespace(name)
		if err != nil {
			return Rendered{}, nil, err
		}
		allowlists, err := x.Allowlists(name)
		if err != nil {
			return Rendered{}, nil, err
		}
		if ns == nil {
			for _, al := range allowlists {
				findings = append(findings, x.allowlistFinding(name, al.Name, "", fmt.Sprintf(
					"namespace %q is defined neither in the manifests nor in the cluster, so no NetworkPolicy is rendered for this allowlist: add the Namespace (labelled moat.dev/isolated=true) to the manifests", name)))
			}
			continue
		}
		if v1alpha1.Isolated(ns) && policy.Protected(ns, cfg) {
			f := Finding{Kind: "Namespace", Name: name, Field: "metadata.labels[moat.dev/isolated]", Message: policy.ProtectedProblem(name).Message, Severity: SeverityWarning}
			if p, ok := x.Position("Namespace", "", name); ok {
				f.File, f.Line = p.File, p.Line
			} else {
				f.File = ClusterSource
			}
			findings = append(findings, f)
		}
		in := facts
		in.Namespace, in.Allowlists = ns, allowlists
		m, err := policy.Compute(in, x, cfg)
		if err != nil {
			return Rendered{}, nil, err
		}
		res := m.Render()
		out.Policies = append(out.Policies, res.Policies...)
		admin, err := m.AdminTier(cfg.Enforcement, cfg.AdminTierPriority)
		if err != nil {
			return Rendered{}, nil, err
		}
		out.AdminTier = append(out.AdminTier, admin...)
		for alName, r := range res.Allowlists {
			for _, p := range r.Problems {
				findings = append(findings, x.allowlistFinding(name, alName, p.Field, p.Message+" ("+p.Reason+")"))
			}
		}
	}
	SortFindings(findings)
	return out, findings, nil
}

// allowlistFinding is a warning about an allowlist, placed where the
// manifests define it (or at ClusterSource).
func (x *Index) allowlistFinding(namespace, name, fld, msg string) Finding {
	f := Finding{Kind: "NetworkAllowlist", Namespace: namespace, Name: name, Field: fld, Message: msg, Severity: SeverityWarning}
	if p, ok := x.Position("NetworkAllowlist", namespace, name); ok {
		f.File, f.Line = p.File, p.Line
	} else {
		f.File = ClusterSource
	}
	return f
}

// WriteDocuments writes each value as one YAML document of a stream,
// separated by "---" lines.
func WriteDocuments(w io.Writer, docs []any) error {
	for i, doc := range docs {
		out, err := yaml.Marshal(doc)
		if err != nil {
			return err
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}
