package webhook

import (
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

func TestTrusted(t *testing.T) {
	trust := Trust{
		ServiceAccount: ServiceAccountUser("moat-system", DefaultServiceAccountName),
		AdminGroups:    []string{"system:masters", "network-admins"},
	}
	tests := []struct {
		name string
		user authenticationv1.UserInfo
		want bool
	}{
		{"moat's ServiceAccount", authenticationv1.UserInfo{Username: "system:serviceaccount:moat-system:moat"}, true},
		{"the namespace controller", authenticationv1.UserInfo{Username: NamespaceControllerUser}, true},
		{"the garbage collector", authenticationv1.UserInfo{Username: GarbageCollectorUser}, true},
		{"the controller manager's shared identity", authenticationv1.UserInfo{Username: ControllerManagerUser}, true},
		{"a member of system:masters", authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated", "system:masters"}}, true},
		{"a member of an extra admin group", authenticationv1.UserInfo{Username: "bob", Groups: []string{"network-admins"}}, true},
		{"a tenant", authenticationv1.UserInfo{Username: "carol", Groups: []string{"system:authenticated", "developers"}}, false},
		{"another namespace's moat ServiceAccount", authenticationv1.UserInfo{Username: "system:serviceaccount:tenant:moat"}, false},
		{"a user named like an admin group", authenticationv1.UserInfo{Username: "system:masters"}, false},
		{"an anonymous request", authenticationv1.UserInfo{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := trust.Trusted(tt.user); got != tt.want {
				t.Errorf("Trusted(%+v) = %v, want %v", tt.user, got, tt.want)
			}
		})
	}
}

func TestTrustedWithoutConfiguration(t *testing.T) {
	// The zero Trust still lets the Kubernetes controllers finish namespace
	// deletion and garbage collection, and trusts nobody else.
	var trust Trust
	for user, want := range map[string]bool{NamespaceControllerUser: true, GarbageCollectorUser: true, "": false, "system:admin": false} {
		if got := trust.Trusted(authenticationv1.UserInfo{Username: user, Groups: []string{"system:masters"}}); got != want {
			t.Errorf("zero Trust: Trusted(%q) = %v, want %v", user, got, want)
		}
	}
}
