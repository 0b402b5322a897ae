package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"moat.dev/moat/api/v1alpha1"
)

// Names of the NetworkPolicies that moat generates in every isolated namespace.
const (
	// DefaultIngressPolicyName is the policy that denies ingress from other
	// namespaces while allowing the same namespace and the configured
	// namespaces and CIDRs.
	DefaultIngressPolicyName = "moat-default-ingress"
	// DefaultEgressPolicyName is the policy that restricts egress to the same
	// namespace and DNS once the namespace declares an egress rule.
	DefaultEgressPolicyName = "moat-default-egress"

	// GroupIngressPolicyName admits ingress from the namespace's project
	// group (--project-label), and NodesIngressPolicyName from the nodes'
	// addresses (--allow-ingress-from-nodes). They extend the deny of
	// moat-default-ingress and are written apart from it, after it: one
	// that cannot be written (an oversized node list, say) leaves the
	// namespace closed, never open.
	GroupIngressPolicyName = "moat-group-ingress"
	NodesIngressPolicyName = "moat-nodes-ingress"

	// AllowlistPolicyPrefix starts the name of every policy generated from a
	// NetworkAllowlist.
	AllowlistPolicyPrefix = "moat-allowlist-"

	// ReservedPolicyNamePrefix starts the name of every NetworkPolicy moat
	// writes (the names above, and any it may write in the future): such
	// names are moat's in every namespace (see IsReservedPolicyName).
	ReservedPolicyNamePrefix = "moat-"

	// AllowlistLabel names, on a generated policy, the allowlist it comes from.
	// It is informational only (set when the name fits a label value);
	// ownership is carried by the owner reference and the managed-by label.
	AllowlistLabel = "moat.dev/allowlist"
)

// AdmissionGrace is how long the isolation label may take to be stored after
// the mutating webhook wrote a namespace's policies during its admission:
// the webhook's timeoutSeconds (10, in manifests/webhook) plus the one-second
// resolution of creation timestamps. The webhook's forgery guard
// (webhook.AdmissionWriteGuard) waits that long for the label, and the
// controller keeps such policies exactly that long while the label is
// missing: one constant, so the two can never disagree.
const AdmissionGrace = 11 * time.Second

// IsDenyPolicy reports whether name is a policy that denies on its own
// (moat-default-ingress, moat-default-egress): written first, before the
// policies that extend it.
func IsDenyPolicy(name string) bool {
	return name == DefaultIngressPolicyName || name == DefaultEgressPolicyName
}

// policyNameHashLen is the number of hex digits of the hash suffix that keeps
// truncated policy names distinct.
const policyNameHashLen = 10

// PolicyName returns the name of the NetworkPolicy generated from the
// allowlist allowlistName: "moat-allowlist-<name>". A name longer than a
// Kubernetes object name allows (253 characters) is truncated and ends in a
// stable hash of the full allowlist name, so distinct allowlists keep
// distinct policy names and the result is a valid DNS subdomain.
func PolicyName(allowlistName string) string {
	name := AllowlistPolicyPrefix + allowlistName
	if len(name) <= validation.DNS1123SubdomainMaxLength {
		return name
	}
	sum := sha256.Sum256([]byte(allowlistName))
	suffix := hex.EncodeToString(sum[:])[:policyNameHashLen]
	prefix := name[:validation.DNS1123SubdomainMaxLength-len(suffix)-1]
	// A subdomain label must end in an alphanumeric character.
	prefix = strings.TrimRight(prefix, "-.")
	return prefix + "-" + suffix
}

// ManagedLabels returns a new map holding the label that marks every object
// moat creates (app.kubernetes.io/managed-by: moat).
func ManagedLabels() map[string]string {
	return map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}
}

// IsManaged reports whether obj carries moat's managed-by label. A nil
// interface is not managed; obj must not be a nil pointer.
func IsManaged(obj metav1.Object) bool {
	return obj != nil && obj.GetLabels()[v1alpha1.ManagedByLabel] == v1alpha1.ManagedByValue
}

// IsReservedPolicyName reports whether name is reserved for the
// NetworkPolicies moat writes: every name that starts with
// ReservedPolicyNamePrefix. A policy under such a name that moat does not
// manage would keep moat from writing its own (moat never takes over a
// policy it did not write), so that, for example, a tenant's
// moat-default-ingress created before the namespace is isolated would
// leave it open; only moat and the admins may create one.
func IsReservedPolicyName(name string) bool {
	return strings.HasPrefix(name, ReservedPolicyNamePrefix)
}

// NamesTakenError reports NetworkPolicies that moat needs in a namespace
// but did not write because policies it does not manage (without its
// managed-by label) hold their names: moat never takes over such a policy,
// so what its own would enforce (the isolation itself, for
// DefaultIngressPolicyName) is missing until they are deleted or renamed.
type NamesTakenError struct {
	// Namespace is the namespace of the policies.
	Namespace string
	// Names are the names taken, sorted.
	Names []string
}

func (e *NamesTakenError) Error() string {
	return fmt.Sprintf("NetworkPolicies %q in namespace %s are not managed by moat (they lack the label %s=%s) and hold names of the policies moat writes, so moat did not write its own",
		e.Names, e.Namespace, v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue)
}
