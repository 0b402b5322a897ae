package deploy

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// moat's identity in the cluster, as the API server authenticates its pods.
var (
	moatUser   = "system:serviceaccount:moat-system:moat"
	moatGroups = []string{"system:serviceaccounts", "system:serviceaccounts:moat-system", "system:authenticated"}
)

// tenantNamespace is any project namespace moat works in.
const tenantNamespace = "demo-project-1"

// access is one request moat might make.
type access struct {
	namespace, group, resource, subresource, verb, name string
}

func (a access) String() string {
	r := a.resource
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.group != "" {
		r += "." + a.group
	}
	ns := a.namespace
	if ns == "" {
		ns = "(cluster)"
	}
	return fmt.Sprintf("%s %s in %s", a.verb, r, ns)
}

// moatMay asks the API server's authorizer, through a SubjectAccessReview,
// whether moat's ServiceAccount may make the request.
func moatMay(a access) (bool, string) {
	GinkgoHelper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   moatUser,
		Groups: moatGroups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace:   a.namespace,
			Group:       a.group,
			Resource:    a.resource,
			Subresource: a.subresource,
			Verb:        a.verb,
			Name:        a.name,
		},
	}}
	Expect(k8sClient.Create(ctx, sar)).To(Succeed())
	return sar.Status.Allowed, sar.Status.Reason
}

var _ = Describe("moat's RBAC, on the API server", func() {
	DescribeTable("allows every request moat makes",
		func(a access) {
			allowed, reason := moatMay(a)
			Expect(allowed).To(BeTrue(), "%s: %s", a, reason)
		},
		Entry(nil, access{verb: "get", resource: "namespaces"}),
		Entry(nil, access{verb: "list", resource: "namespaces"}),
		Entry(nil, access{verb: "watch", resource: "namespaces"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "get", resource: "services"}),
		Entry(nil, access{verb: "list", resource: "services"}),
		Entry(nil, access{verb: "watch", resource: "services"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "get", group: "moat.dev", resource: "networkallowlists"}),
		Entry(nil, access{verb: "list", group: "moat.dev", resource: "networkallowlists"}),
		Entry(nil, access{verb: "watch", group: "moat.dev", resource: "networkallowlists"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "update", group: "moat.dev", resource: "networkallowlists", subresource: "status"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "patch", group: "moat.dev", resource: "networkallowlists", subresource: "status"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "update", group: "moat.dev", resource: "networkallowlists", subresource: "finalizers"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "get", group: "networking.k8s.io", resource: "networkpolicies"}),
		Entry(nil, access{verb: "list", group: "networking.k8s.io", resource: "networkpolicies"}),
		Entry(nil, access{verb: "watch", group: "networking.k8s.io", resource: "networkpolicies"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "create", group: "networking.k8s.io", resource: "networkpolicies"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "update", group: "networking.k8s.io", resource: "networkpolicies"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "patch", group: "networking.k8s.io", resource: "networkpolicies"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "delete", group: "networking.k8s.io", resource: "networkpolicies"}),
		// The admin-tier objects of --enforcement (cluster-scoped).
		Entry(nil, access{verb: "get", group: "policy.networking.k8s.io", resource: "adminnetworkpolicies"}),
		Entry(nil, access{verb: "watch", group: "policy.networking.k8s.io", resource: "adminnetworkpolicies"}),
		Entry(nil, access{verb: "patch", group: "policy.networking.k8s.io", resource: "adminnetworkpolicies"}),
		Entry(nil, access{verb: "delete", group: "policy.networking.k8s.io", resource: "adminnetworkpolicies"}),
		Entry(nil, access{verb: "list", group: "policy.networking.k8s.io", resource: "clusternetworkpolicies"}),
		Entry(nil, access{verb: "patch", group: "policy.networking.k8s.io", resource: "clusternetworkpolicies"}),
		Entry(nil, access{verb: "delete", group: "policy.networking.k8s.io", resource: "clusternetworkpolicies"}),
		Entry(nil, access{namespace: systemNamespace, verb: "create", resource: "events"}),
		Entry(nil, access{namespace: systemNamespace, verb: "patch", resource: "events"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "create", group: "events.k8s.io", resource: "events"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "patch", group: "events.k8s.io", resource: "events"}),
		// The metrics endpoint's authentication and authorization.
		Entry(nil, access{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"}),
		Entry(nil, access{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"}),
		Entry(nil, access{namespace: systemNamespace, verb: "get", group: "coordination.k8s.io", resource: "leases", name: "moat.moat.dev"}),
		Entry(nil, access{namespace: systemNamespace, verb: "create", group: "coordination.k8s.io", resource: "leases"}),
		Entry(nil, access{namespace: systemNamespace, verb: "update", group: "coordination.k8s.io", resource: "leases", name: "moat.moat.dev"}),
	)

	DescribeTable("denies everything else",
		func(a access) {
			allowed, reason := moatMay(a)
			Expect(allowed).To(BeFalse(), "%s: %s", a, reason)
		},
		// Secrets: not even moat's own serving certificate (the kubelet mounts it).
		Entry(nil, access{namespace: systemNamespace, verb: "get", resource: "secrets", name: "moat-webhook-server-cert"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "get", resource: "secrets"}),
		Entry(nil, access{verb: "list", resource: "secrets"}),
		Entry(nil, access{verb: "watch", resource: "secrets"}),
		// Pods.
		Entry(nil, access{namespace: tenantNamespace, verb: "get", resource: "pods"}),
		Entry(nil, access{verb: "list", resource: "pods"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "create", resource: "pods"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "delete", resource: "pods"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "create", resource: "pods", subresource: "exec"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "get", resource: "pods", subresource: "log"}),
		// Wildcards of every kind.
		Entry(nil, access{verb: "*", group: "*", resource: "*"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "*", group: "networking.k8s.io", resource: "networkpolicies"}),
		Entry(nil, access{verb: "get", group: "*", resource: "*"}),
		Entry(nil, access{verb: "list", group: "moat.dev", resource: "*"}),
		Entry(nil, access{verb: "deletecollection", group: "networking.k8s.io", resource: "networkpolicies"}),
		Entry(nil, access{verb: "deletecollection", group: "policy.networking.k8s.io", resource: "adminnetworkpolicies"}),
		Entry(nil, access{verb: "create", group: "policy.networking.k8s.io", resource: "baselineadminnetworkpolicies"}),
		Entry(nil, access{verb: "update", group: "policy.networking.k8s.io", resource: "adminnetworkpolicies", subresource: "status"}),
		// Privilege escalation.
		Entry(nil, access{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "clusterroles"}),
		Entry(nil, access{verb: "bind", group: "rbac.authorization.k8s.io", resource: "clusterroles"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "bind", group: "rbac.authorization.k8s.io", resource: "roles"}),
		Entry(nil, access{verb: "impersonate", resource: "users"}),
		Entry(nil, access{verb: "impersonate", resource: "groups"}),
		Entry(nil, access{namespace: "kube-system", verb: "impersonate", resource: "serviceaccounts"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "create", resource: "serviceaccounts", subresource: "token"}),
		// Writes moat never makes.
		Entry(nil, access{verb: "update", resource: "namespaces", name: tenantNamespace}),
		Entry(nil, access{verb: "patch", resource: "namespaces", name: tenantNamespace}),
		Entry(nil, access{verb: "delete", resource: "namespaces", name: tenantNamespace}),
		Entry(nil, access{namespace: tenantNamespace, verb: "update", resource: "services"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "create", group: "moat.dev", resource: "networkallowlists"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "update", group: "moat.dev", resource: "networkallowlists"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "delete", group: "moat.dev", resource: "networkallowlists"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "get", resource: "configmaps"}),
		Entry(nil, access{verb: "update", group: "apiextensions.k8s.io", resource: "customresourcedefinitions"}),
		Entry(nil, access{verb: "update", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"}),
		Entry(nil, access{verb: "delete", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations"}),
		// core/v1 Events only for leader election, in moat's namespace.
		Entry(nil, access{namespace: tenantNamespace, verb: "create", resource: "events"}),
		// Leases outside moat's namespace (leader election is namespaced).
		Entry(nil, access{namespace: "kube-system", verb: "update", group: "coordination.k8s.io", resource: "leases"}),
		Entry(nil, access{namespace: tenantNamespace, verb: "create", group: "coordination.k8s.io", resource: "leases"}),
		Entry(nil, access{namespace: systemNamespace, verb: "delete", group: "coordination.k8s.io", resource: "leases"}),
	)

	It("binds moat only to rules without wildcards or non-resource URLs", func() {
		var bindings rbacv1.ClusterRoleBindingList
		Expect(k8sClient.List(ctx, &bindings)).To(Succeed())
		var rules []rbacv1.PolicyRule
		bound := 0
		for _, b := range bindings.Items {
			for _, s := range b.Subjects {
				if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == systemNamespace && s.Name == serviceAccountName {
					Expect(b.RoleRef.Kind).To(Equal("ClusterRole"))
					var role rbacv1.ClusterRole
					Expect(k8sClient.Get(ctx, client.ObjectKey{Name: b.RoleRef.Name}, &role)).To(Succeed())
					Expect(role.AggregationRule).To(BeNil())
					rules = append(rules, role.Rules...)
					bound++
				}
			}
		}
		var roleBindings rbacv1.RoleBindingList
		Expect(k8sClient.List(ctx, &roleBindings)).To(Succeed())
		for _, b := range roleBindings.Items {
			for _, s := range b.Subjects {
				if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == systemNamespace && s.Name == serviceAccountName {
					Expect(b.Namespace).To(Equal(systemNamespace))
					Expect(b.RoleRef.Kind).To(Equal("Role"))
					var role rbacv1.Role
					Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.RoleRef.Name}, &role)).To(Succeed())
					rules = append(rules, role.Rules...)
					bound++
				}
			}
		}
		Expect(bound).To(Equal(2), "the ClusterRole moat and the leader-election Role")
		for _, r := range rules {
			Expect(r.Verbs).NotTo(ContainElement("*"))
			Expect(r.APIGroups).NotTo(ContainElement("*"))
			Expect(r.Resources).NotTo(ContainElement("*"))
			Expect(r.Resources).NotTo(ContainElement(HaveSuffix("/*")))
			Expect(r.NonResourceURLs).To(BeEmpty())
			Expect(r.Verbs).NotTo(ContainElement(BeElementOf("escalate", "bind", "impersonate")))
		}
	})
})
