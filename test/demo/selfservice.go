package main

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// projectAdmin is the guide's project-level user.
const projectAdmin = "project-admin"

// selfService is the guide's own first step done by the project admin: a
// cluster admin binds moat-isolation-toggle in demo-project-1, and the
// project admin turns isolation on and off, and fails to change anything
// else of the Namespace or to touch demo-project-2.
func (d *demo) selfService(ctx context.Context) error {
	d.section("The project admin toggles isolation of their own project",
		`Guide: "Log in to KubeSphere as project-admin ... To enable project network`,
		`isolation, click Enable." A cluster admin grants that with a RoleBinding of`,
		"moat's ClusterRole moat-isolation-toggle inside the project; the admission policy",
		"moat-isolation-toggle (evaluated by the API server) lets such a user change the",
		"moat.dev/isolated label and nothing else of the Namespace.")
	rb := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Namespace: project1, Name: "moat-isolation-toggle"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "moat-isolation-toggle"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: projectAdmin}},
	}
	d.command("kubectl create rolebinding moat-isolation-toggle -n %s --clusterrole=moat-isolation-toggle --user=%s", project1, projectAdmin)
	err := d.c.Create(ctx, rb)
	d.answer(err, d.warnings.take())
	if err != nil {
		return err
	}
	cfg := rest.CopyConfig(d.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: projectAdmin}
	admin, err := client.New(cfg, client.Options{Scheme: d.c.Scheme()})
	if err != nil {
		return err
	}

	label := func(namespace string, mutate func(*corev1.Namespace)) error {
		stored := &corev1.Namespace{}
		if err := d.c.Get(ctx, client.ObjectKey{Name: namespace}, stored); err != nil {
			return err
		}
		changed := stored.DeepCopy()
		if changed.Labels == nil {
			changed.Labels = map[string]string{}
		}
		mutate(changed)
		err := admin.Patch(ctx, changed, client.MergeFrom(stored))
		d.answer(err, d.warnings.take())
		return err
	}

	// RBAC learns of the new binding through an informer: wait for it.
	allowed := d.waitFor(ctx, statusDeadline, func() bool {
		return admin.Get(ctx, client.ObjectKey{Name: project1}, &corev1.Namespace{}) == nil
	})
	d.check(allowed, "%s may read namespace %s", projectAdmin, project1)

	d.command("kubectl --as=%s label namespace %s %s=true --overwrite", projectAdmin, project1, moatv1alpha1.IsolationLabel)
	err = label(project1, func(ns *corev1.Namespace) { ns.Labels[moatv1alpha1.IsolationLabel] = "true" })
	d.check(err == nil, "the project admin turns isolation on")
	nps := d.list(ctx, project1)
	d.check(find(nps, policy.DefaultIngressPolicyName) != nil, "%s is in place when the request returns", policy.DefaultIngressPolicyName)

	d.command("kubectl --as=%s label namespace %s pod-security.kubernetes.io/enforce=privileged", projectAdmin, project1)
	err = label(project1, func(ns *corev1.Namespace) { ns.Labels["pod-security.kubernetes.io/enforce"] = "privileged" })
	d.check(apierrors.IsForbidden(err), "changing another label (Pod Security) is refused")

	d.command("kubectl --as=%s annotate namespace %s example.com/owner=project-admin", projectAdmin, project1)
	err = label(project1, func(ns *corev1.Namespace) {
		if ns.Annotations == nil {
			ns.Annotations = map[string]string{}
		}
		ns.Annotations["example.com/owner"] = projectAdmin
	})
	d.check(apierrors.IsForbidden(err), "adding an annotation is refused")

	d.command("kubectl --as=%s label namespace %s %s=true", projectAdmin, project2, moatv1alpha1.IsolationLabel)
	err = label(project2, func(ns *corev1.Namespace) { ns.Labels[moatv1alpha1.IsolationLabel] = "true" })
	d.check(apierrors.IsForbidden(err), "%s is another project: refused by RBAC", project2)

	d.command("kubectl --as=%s label namespace %s %s=false --overwrite", projectAdmin, project1, moatv1alpha1.IsolationLabel)
	err = label(project1, func(ns *corev1.Namespace) { ns.Labels[moatv1alpha1.IsolationLabel] = "false" })
	d.check(err == nil, "the project admin turns isolation off")
	var after []networkingv1.NetworkPolicy
	gone := d.waitFor(ctx, statusDeadline, func() bool {
		after = d.list(ctx, project1)
		return len(managed(after)) == 0
	})
	d.policies(project1, after)
	d.check(gone, "every NetworkPolicy moat managed in %s is deleted again", project1)
	ns := &corev1.Namespace{}
	if err := d.c.Get(ctx, client.ObjectKey{Name: project1}, ns); err != nil {
		return fmt.Errorf("reading namespace %s: %w", project1, err)
	}
	_, psa := ns.Labels["pod-security.kubernetes.io/enforce"]
	d.check(!psa && len(ns.Annotations["example.com/owner"]) == 0, "nothing else of the Namespace changed")
	return nil
}
