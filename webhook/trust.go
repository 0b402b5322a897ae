package webhook

import (
	"slices"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
)

// Identities of the Kubernetes controllers that must always be able to
// delete the NetworkPolicies moat manages: without them a namespace or an
// allowlist could never finish being deleted.
const (
	// NamespaceControllerUser deletes every object of a namespace that is
	// being deleted.
	NamespaceControllerUser = "system:serviceaccount:kube-system:namespace-controller"
	// GarbageCollectorUser deletes the policies of a deleted allowlist
	// (owner references).
	GarbageCollectorUser = "system:serviceaccount:kube-system:generic-garbage-collector"
	// ControllerManagerUser is the identity of every kube-controller-manager
	// controller when it runs without per-controller credentials
	// (--use-service-account-credentials=false).
	ControllerManagerUser = "system:kube-controller-manager"
)

// DefaultAdminGroups are the groups whose members may change managed
// policies unless configured otherwise (moat serve --admin-groups).
var DefaultAdminGroups = []string{"system:masters"}

// DefaultServiceAccountName is the name of moat's own ServiceAccount.
const DefaultServiceAccountName = "moat"

// ServiceAccountUser returns the user name of a ServiceAccount, e.g.
// system:serviceaccount:moat-system:moat.
func ServiceAccountUser(namespace, name string) string {
	return serviceaccount.MakeUsername(namespace, name)
}

// Trust says who may create, change or delete the NetworkPolicies that moat
// manages. Everybody else is denied by the NetworkPolicy webhook.
type Trust struct {
	// ServiceAccount is moat's own user name
	// (system:serviceaccount:<namespace>:<name>).
	ServiceAccount string
	// AdminGroups are groups whose members are trusted (break glass).
	AdminGroups []string
}

// Trusted reports whether the user may change managed policies: moat
// itself, the namespace controller, the garbage collector, the controller
// manager's shared identity, or a member of an admin group.
func (t Trust) Trusted(user authenticationv1.UserInfo) bool {
	switch user.Username {
	case "":
		return false
	case t.ServiceAccount, NamespaceControllerUser, GarbageCollectorUser, ControllerManagerUser:
		return true
	}
	for _, group := range user.Groups {
		if slices.Contains(t.AdminGroups, group) {
			return true
		}
	}
	return false
}
