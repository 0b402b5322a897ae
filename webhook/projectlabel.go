package webhook

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/validation"
)

// ProjectLabelGuard says who may set, change or remove the project label
// (moat serve --project-label) on a Namespace: the label admits traffic
// between the namespaces of a group, so a tenant who could write it would
// join another tenant's group. Members of the admin groups and the trusted
// controllers (--project-label-writers: the user names of e.g. KubeSphere's,
// Rancher's or Capsule's controller) may; everybody else is refused.
type ProjectLabelGuard struct {
	// Key is the project label; empty turns the guard off.
	Key string
	// Writers are the user names (system:serviceaccount:<ns>:<name> for
	// a ServiceAccount) trusted to write the label.
	Writers []string
	// AdminGroups are the groups whose members may write the label.
	AdminGroups []string
}

// check returns the errors of an update from old (nil: a create) to ns by
// the user of the admission request in ctx. A request without a user is
// refused when it writes the label.
func (g ProjectLabelGuard) check(ctx context.Context, ns, old *corev1.Namespace) field.ErrorList {
	if g.Key == "" {
		return nil
	}
	mayWrite := false
	if req, err := admission.RequestFromContext(ctx); err == nil {
		user := req.UserInfo
		mayWrite = (user.Username != "" && slices.Contains(g.Writers, user.Username)) ||
			slices.ContainsFunc(user.Groups, func(group string) bool { return slices.Contains(g.AdminGroups, group) })
	}
	return validation.ValidateProjectLabel(ns, old, g.Key, mayWrite)
}
