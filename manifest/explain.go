package manifest

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"moat.dev/moat/explain"
	"moat.dev/moat/lookup"
	"moat.dev/moat/policy"
)

// ExplainObjects returns what moat explain evaluates offline: the
// Namespaces, Pods, Services, Nodes and NetworkPolicies of the manifests,
// and the NetworkPolicies and admin-tier objects (cfg.Enforcement) that moat
// would write for them (see Render). The error is a failed live lookup.
func ExplainObjects(x *Index, cfg policy.Config) (explain.Objects, error) {
	var objs explain.Objects
	for i := range x.Objects {
		switch o := x.Objects[i].Object.(type) {
		case *corev1.Pod:
			objs.Pods = append(objs.Pods, o)
		case *corev1.Service:
			objs.Services = append(objs.Services, o)
		case *corev1.Node:
			objs.Nodes = append(objs.Nodes, o)
		case *networkingv1.NetworkPolicy:
			objs.NetworkPolicies = append(objs.NetworkPolicies, o)
		}
	}
	objs.Namespaces = x.Namespaces()
	rendered, _, err := Render(x, cfg)
	if err != nil {
		return objs, err
	}
	for i := range rendered.Policies {
		objs.NetworkPolicies = append(objs.NetworkPolicies, &rendered.Policies[i])
	}
	objs.AddAdminTier(rendered.AdminTier)
	return objs, nil
}

// Model computes what the namespace name admits, as Render does for it: from
// its Namespace, its allowlists and the cluster facts of the manifests and
// the live cluster.
func (x *Index) Model(name string, cfg policy.Config) (policy.Model, error) {
	in, err := x.clusterFacts(cfg)
	if err != nil {
		return policy.Model{}, err
	}
	if in.Namespace, err = x.Namespace(name); err != nil {
		return policy.Model{}, err
	}
	if in.Allowlists, err = x.Allowlists(name); err != nil {
		return policy.Model{}, err
	}
	return policy.Compute(in, x, cfg)
}

// Where names where the manifests define an allowlist, "FILE:LINE", or
// ClusterSource when the live cluster does.
func (x *Index) Where(namespace, name string) string {
	if p, ok := x.Position("NetworkAllowlist", namespace, name); ok {
		return p.String()
	}
	return fmt.Sprintf("%s (NetworkAllowlist %s/%s)", ClusterSource, namespace, name)
}

// LiveExplainObjects reads from a live cluster what moat explain needs to
// answer for the endpoints specs: every Node, the admin-tier objects that
// enforcement e evaluates (lookup.Session.AdminTier), and for each namespace
// that an endpoint names (or that holds the pod of an address) its
// Namespace, Pods, Services and every NetworkPolicy (moat's and tenants').
// Only those namespaces are read, so the cost does not grow with the
// cluster's workloads (admin-tier objects: one or two per isolated
// namespace, and the cluster admins').
func LiveExplainObjects(s *lookup.Session, specs []explain.Spec, e policy.Enforcement) (explain.Objects, error) {
	var objs explain.Objects
	nodes, err := noMatchIsNone(s.Nodes)()
	if err != nil {
		return objs, err
	}
	objs.Nodes = nodes
	tier, err := s.AdminTier(e)
	if err != nil {
		return objs, err
	}
	objs.AddAdminTier(tier)
	namespaces := map[string]bool{}
	for _, spec := range specs {
		if spec.Kind != explain.SpecAddress {
			namespaces[spec.Namespace] = spec.Kind != explain.SpecNode
			continue
		}
		if !spec.Prefix.IsSingleIP() {
			continue
		}
		pods, err := s.PodsWithIP(spec.Prefix.Addr().String())
		if err != nil {
			return objs, err
		}
		for _, p := range pods {
			namespaces[p.Namespace] = true
		}
	}
	for name, read := range namespaces {
		if read {
			if err := readNamespace(s, name, &objs); err != nil {
				return objs, err
			}
		}
	}
	return objs, nil
}

// readNamespace adds a namespace's objects to objs.
func readNamespace(s *lookup.Session, name string, objs *explain.Objects) error {
	ns, err := s.Namespace(name)
	if err != nil || ns == nil {
		return err
	}
	objs.Namespaces = append(objs.Namespaces, ns)
	pods, err := s.Pods(name)
	if err != nil {
		return err
	}
	services, err := s.Services(name)
	if err != nil {
		return err
	}
	policies, err := s.NetworkPolicies(name)
	if err != nil {
		return err
	}
	objs.Pods = append(objs.Pods, pods...)
	objs.Services = append(objs.Services, services...)
	objs.NetworkPolicies = append(objs.NetworkPolicies, policies...)
	return nil
}
