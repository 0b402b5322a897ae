package main

import (
	"context"
	"flag"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/test/evaluator"
)

// enforcement is the --enforcement moat serves with (make demo
// ENFORCEMENT=...); with an admin-tier one the demo also shows the
// admin-tier object of demo-project-1 and a tenant's NetworkPolicy failing
// to widen it.
var enforcement = policy.EnforcementNetworkPolicy

func init() {
	flag.Func("enforcement", "the --enforcement moat serves with: "+policy.JoinEnforcements(), func(s string) error {
		e, err := policy.ParseEnforcement(s)
		enforcement = e
		return err
	})
}

// adminTierObject reads the main admin-tier object of project1; nil when
// there is none.
func (d *demo) adminTierObject(ctx context.Context) (client.Object, error) {
	var obj client.Object = &npav1alpha1.AdminNetworkPolicy{}
	if enforcement == policy.EnforcementClusterNetworkPolicy {
		obj = &npav1beta1.ClusterNetworkPolicy{}
	}
	err := d.c.Get(ctx, client.ObjectKey{Name: policy.AdminTierName(project1, 0)}, obj)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}

// adminTier shows demo-project-1's admin-tier object and, judged by
// kube-network-policies' policy engine, that a tenant's NetworkPolicy
// admitting everything does not reopen the project.
func (d *demo) adminTier(ctx context.Context) error {
	if !enforcement.AdminTier() {
		return nil
	}
	d.section("Admin-tier enforcement: "+string(enforcement),
		"moat also writes one cluster-scoped admin-tier object per isolated project:",
		"it passes what moat admits to the NetworkPolicy tier and denies every other",
		"namespace (and, once egress is restricted, every other destination). No",
		"namespaced NetworkPolicy can override it.")
	var obj client.Object
	found := d.waitFor(ctx, statusDeadline, func() bool {
		o, err := d.adminTierObject(ctx)
		obj = o
		return err == nil && o != nil
	})
	d.command("kubectl get %s %s -o yaml", enforcement, policy.AdminTierName(project1, 0))
	if !d.check(found, "%s exists", policy.AdminTierName(project1, 0)) {
		return nil
	}
	shown := obj.DeepCopyObject().(client.Object)
	shown.SetManagedFields(nil)
	d.object(shown)
	d.check(lastRulesDeny(obj), "its last ingress and egress rules are Deny, after the Pass rules")
	if enforcement != policy.EnforcementAdminNetworkPolicy {
		d.note("(kube-network-policies' engine judges AdminNetworkPolicy only; ClusterNetworkPolicy is")
		d.note(" checked by the API server's validation of the objects and a translation test)")
		return nil
	}
	tenant := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: project1, Name: "tenant-allow-all"},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
		},
	}
	d.note("A tenant writes a NetworkPolicy that admits everything (make demo runs moat with")
	d.note("--tenant-network-policies=off in this mode, so the webhook lets it through):")
	d.command("kubectl apply -f - <<EOF")
	d.object(tenant)
	err := d.c.Create(ctx, tenant)
	d.answer(err, d.warnings.take())
	if err != nil {
		return err
	}
	defer func() { _ = d.c.Delete(ctx, tenant) }()
	return d.judge(ctx, obj.(*npav1alpha1.AdminNetworkPolicy))
}

// lastRulesDeny reports whether the object's last ingress rule is a Deny
// and, when it has egress rules, its last egress rule too.
func lastRulesDeny(obj client.Object) bool {
	switch o := obj.(type) {
	case *npav1alpha1.AdminNetworkPolicy:
		in, out := o.Spec.Ingress, o.Spec.Egress
		return len(in) > 0 && in[len(in)-1].Action == npav1alpha1.AdminNetworkPolicyRuleActionDeny &&
			(len(out) == 0 || out[len(out)-1].Action == npav1alpha1.AdminNetworkPolicyRuleActionDeny)
	case *npav1beta1.ClusterNetworkPolicy:
		in, out := o.Spec.Ingress, o.Spec.Egress
		return len(in) > 0 && in[len(in)-1].Action == npav1beta1.ClusterNetworkPolicyRuleActionDeny &&
			(len(out) == 0 || out[len(out)-1].Action == npav1beta1.ClusterNetworkPolicyRuleActionDeny)
	}
	return false
}

// Addresses of the demo's pods as the judge sees them (the demo cluster
// runs no pods).
const (
	project1Pod = "10.0.1.10"
	nginxPod    = "10.0.2.10"
	project2Pod = "10.0.2.20"
	defaultPod  = "10.0.3.10"
)

// judge evaluates connections with kube-network-policies v0.8.0's engine on
// the namespaces, NetworkPolicies (moat's and the tenant's) and the
// admin-tier object as stored, with a pod in each project.
func (d *demo) judge(ctx context.Context, anp *npav1alpha1.AdminNetworkPolicy) error {
	objs := evaluator.Objects{AdminNetworkPolicies: []npav1alpha1.AdminNetworkPolicy{*anp}}
	for _, name := range []string{project1, project2, metav1.NamespaceDefault} {
		ns := &corev1.Namespace{}
		if err := d.c.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
			return err
		}
		objs.Namespaces = append(objs.Namespaces, *ns)
		nps := &networkingv1.NetworkPolicyList{}
		if err := d.c.List(ctx, nps, client.InNamespace(name)); err != nil {
			return err
		}
		objs.NetworkPolicies = append(objs.NetworkPolicies, nps.Items...)
	}
	objs.Pods = []corev1.Pod{
		judgedPod(project1, "web", project1Pod, nil),
		judgedPod(project2, "nginx", nginxPod, map[string]string{"app": "nginx"}),
		judgedPod(project2, "client", project2Pod, nil),
		judgedPod(metav1.NamespaceDefault, "other", defaultPod, nil),
	}
	e, err := evaluator.New(objs)
	if err != nil {
		return err
	}
	d.note("kube-network-policies v0.8.0's policy engine (in process) judges, with a pod per project:")
	for _, c := range []struct {
		src, dst string
		port     int
		want     bool
		what     string
	}{
		{defaultPod, project1Pod, 8080, false, "a pod of namespace default -> " + project1 + ":8080 (the tenant policy admits it)"},
		{project2Pod, project1Pod, 8080, true, "a pod of " + project2 + " -> " + project1 + ":8080 (allowlisted)"},
		{project1Pod, nginxPod, 80, true, project1 + " -> the nginx pod of " + project2 + ":80 (allowlisted)"},
		{project1Pod, "10.1.0.1", 80, true, project1 + " -> 10.1.0.1:80 (allowlisted)"},
		{project1Pod, project2Pod, 80, false, project1 + " -> another pod of " + project2 + ":80 (the tenant policy admits it)"},
		{project1Pod, "8.8.8.8", 443, false, project1 + " -> 8.8.8.8:443 (the tenant policy admits it)"},
	} {
		got, err := e.Allowed(c.src, c.dst, c.port, corev1.ProtocolTCP)
		if err != nil {
			return err
		}
		verdict := map[bool]string{true: "allowed", false: "denied"}
		d.check(got == c.want, "%s: %s", c.what, verdict[got])
	}
	return nil
}

func judgedPod(namespace, name, ip string, labels map[string]string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "demo", Containers: []corev1.Container{{Name: "c"}}},
		Status:     corev1.PodStatus{PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

// adminTierGone checks, after isolation is turned off, that the admin-tier
// object is deleted too.
func (d *demo) adminTierGone(ctx context.Context) error {
	if !enforcement.AdminTier() {
		return nil
	}
	gone := d.waitFor(ctx, statusDeadline, func() bool {
		obj, err := d.adminTierObject(ctx)
		return err == nil && obj == nil
	})
	d.check(gone, "the admin-tier object %s is deleted too (%s=false)", policy.AdminTierName(project1, 0), moatv1alpha1.IsolationLabel)
	return nil
}
