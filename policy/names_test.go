package policy

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestPolicyName(t *testing.T) {
	fits := strings.Repeat("a", 253-len("moat-allowlist-"))
	for _, tc := range []struct {
		name, allowlist, want string
	}{
		{"short", "web", "moat-allowlist-web"},
		{"exactly 253 characters", fits, "moat-allowlist-" + fits},
		{"one character over", fits + "b", "moat-allowlist-" + strings.Repeat("a", 227) + "-" + hash10(fits+"b")},
		{"trailing dot and dash before the hash are trimmed", strings.Repeat("a", 225) + ".-" + strings.Repeat("c", 20),
			"moat-allowlist-" + strings.Repeat("a", 225) + "-" + hash10(strings.Repeat("a", 225)+".-"+strings.Repeat("c", 20))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PolicyName(tc.allowlist)
			if got != tc.want {
				t.Errorf("PolicyName() = %q, want %q", got, tc.want)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) != 0 {
				t.Errorf("PolicyName() = %q is not a valid object name: %v", got, errs)
			}
		})
	}
}

func TestPolicyNameKeepsLongNamesDistinct(t *testing.T) {
	base := strings.Repeat("x", 300)
	a, b := PolicyName(base+"-a"), PolicyName(base+"-b")
	if a == b {
		t.Errorf("PolicyName() gives %q for two different allowlists", a)
	}
	if len(a) > 253 || len(b) > 253 {
		t.Errorf("PolicyName() lengths = %d, %d, want at most 253", len(a), len(b))
	}
}

// hash10 is the first 10 hex digits of the SHA-256 of s: the documented
// suffix format.
func hash10(s string) string {
	return sha256Hex(s)[:10]
}

// TestReservedPolicyNames checks that every name moat writes is reserved,
// and that names users commonly give their policies are not.
func TestReservedPolicyNames(t *testing.T) {
	for _, name := range []string{
		DefaultIngressPolicyName, DefaultEgressPolicyName, PolicyName("web"),
		PolicyName(strings.Repeat("x", 300)), AllowlistPolicyPrefix,
	} {
		if !IsReservedPolicyName(name) {
			t.Errorf("IsReservedPolicyName(%q) = false, want true: moat writes it", name)
		}
	}
	for _, name := range []string{"", "default-deny", "allow-moat-default-ingress", "moat", "Moat-default-ingress", "moatdefault"} {
		if IsReservedPolicyName(name) {
			t.Errorf("IsReservedPolicyName(%q) = true, want false", name)
		}
	}
}
