// Package policy holds moat's one model of what a project admits (Model,
// computed by Compute from the configuration, the stored Namespace, its
// NetworkAllowlists, the Services they name and the cluster facts) and its
// renderer into the exact NetworkPolicies moat must own (Model.Render). It
// is pure: it never talks to the API server, so `moat render`, the mutating
// webhook, the controller and the tenant rule (package validation, through
// Model.Selections and CoversPort) all read the same answer.
//
// In an isolated namespace (moat.dev/isolated: "true") Render generates:
//
//   - moat-default-ingress: ingress only from the same namespace, from each
//     Config.AllowedIngressNamespaces (one peer per namespace, selected by
//     the immutable kubernetes.io/metadata.name label) and from each
//     Config.AllowedIngressCIDRs. Both lists are sorted and deduplicated, so
//     the order of the flags does not matter.
//   - moat-default-egress, once any allowlist declares an egress rule (even
//     one whose peers are all dropped: fail closed): egress only to the same
//     namespace and to the cluster DNS pods on the DNS Service's target
//     ports. When the DNS Service is missing or has no selector, the DNS pods
//     are selected by the conventional k8s-app: kube-dns label on UDP and
//     TCP 53, so that DNS keeps working.
//   - moat-allowlist-<name> per allowlist with at least one rule, owned by
//     the allowlist. Namespace peers select the namespace by name; ipBlock
//     peers are copied; Service peers select the Service's pods in its
//     namespace. For egress, the rule's ports name Service ports and become
//     their target ports; for ingress the ports are this project's own ports
//     and are kept as declared. Peers needing different port lists become
//     separate rules. A Service peer that cannot be translated is dropped and
//     reported as a Problem; a rule left without peers is dropped, never
//     widened to "everyone". When two allowlists map to one policy name (a
//     long name shortened with a hash), the first by name keeps it and the
//     other reports PolicyConflict.
//
// Outside isolation Render generates nothing and reports IsolationDisabled.
package policy
