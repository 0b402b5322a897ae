package manifest

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/validation"
)

// namespaceProbe answers the lookups of one object's checks from the index
// and notes whether an answer depends on a namespace that kubectl apply
// chooses (-n or the kubeconfig context): a lookup in the object's own
// namespace when it has no metadata.namespace, or an answer that is an object
// without one.
type namespaceProbe struct {
	x *Index
	// own is the namespace of an object without metadata.namespace, or "".
	own       string
	dependsOn bool
}

var (
	_ validation.Cluster    = (*namespaceProbe)(nil)
	_ validation.FactSource = (*namespaceProbe)(nil)
)

// lookups returns what the checks of o look objects up in: the index, or a
// probe when the index warns about unset namespaces.
func (x *Index) lookups(o *Object) (validation.Cluster, *namespaceProbe) {
	if !x.warnNamespaceUnset {
		return x, nil
	}
	p := &namespaceProbe{x: x}
	if o.NamespaceUnset {
		p.own = o.Object.GetNamespace()
	}
	return p, p
}

func (p *namespaceProbe) in(namespace string) {
	if p.own != "" && namespace == p.own {
		p.dependsOn = true
	}
}

// answered notes an answer from the manifests that has no namespace of its own.
func (p *namespaceProbe) answered(o *Object) {
	if o != nil && o.NamespaceUnset {
		p.dependsOn = true
	}
}

func (p *namespaceProbe) Service(namespace, name string) (*corev1.Service, error) {
	p.in(namespace)
	p.answered(p.x.services[types.NamespacedName{Namespace: namespace, Name: name}])
	return p.x.Service(namespace, name)
}

func (p *namespaceProbe) Namespace(name string) (*corev1.Namespace, error) {
	p.in(name)
	return p.x.Namespace(name)
}

// Services and Allowlists note a namespace where the manifests have an
// object of the kind without metadata.namespace (see unsetKinds), rather
// than looking at each object listed: a listing may be long, and asked for
// by every allowlist.
func (p *namespaceProbe) Services(namespace string) ([]*corev1.Service, error) {
	p.in(namespace)
	p.dependsOn = p.dependsOn || p.x.unsetKinds()[kindIn{"Service", namespace}]
	return p.x.Services(namespace)
}

func (p *namespaceProbe) Allowlists(namespace string) ([]*v1alpha1.NetworkAllowlist, error) {
	p.in(namespace)
	p.dependsOn = p.dependsOn || p.x.unsetKinds()[kindIn{"NetworkAllowlist", namespace}]
	return p.x.Allowlists(namespace)
}

// ServiceFacts and EgressFacts serve the facts of the index (derived once
// per namespace, validation.FactSource) and note what Services and
// Allowlists note.
func (p *namespaceProbe) ServiceFacts(namespace string) (*validation.ServiceFacts, error) {
	p.in(namespace)
	p.dependsOn = p.dependsOn || p.x.unsetKinds()[kindIn{"Service", namespace}]
	return p.x.ServiceFacts(namespace)
}

func (p *namespaceProbe) EgressFacts(namespace string) (*validation.EgressFacts, error) {
	p.in(namespace)
	p.dependsOn = p.dependsOn || p.x.unsetKinds()[kindIn{"NetworkAllowlist", namespace}]
	return p.x.EgressFacts(namespace)
}

// kindIn is a kind of object in a namespace.
type kindIn struct{ kind, namespace string }

// unsetKinds returns the kinds and namespaces of the objects of the index
// without metadata.namespace, found once.
func (x *Index) unsetKinds() map[kindIn]bool {
	if x.unset == nil {
		x.unset = map[kindIn]bool{}
		for i := range x.Objects {
			if o := &x.Objects[i]; o.NamespaceUnset {
				x.unset[kindIn{o.Kind, o.Object.GetNamespace()}] = true
			}
		}
	}
	return x.unset
}

// checkObject appends the findings about o (validateObject, the tenant
// rule) and, when they depend on a namespace kubectl apply chooses, a
// warning that says so.
func (x *Index) checkObject(out []Finding, o *Object, cfg validation.Config, validate bool, tenant *tenantRule) []Finding {
	cluster, probe := x.lookups(o)
	if validate {
		out = validateObject(out, o, cluster, cfg)
	}
	out = tenant.findings(out, o, probe)
	if probe == nil || !probe.dependsOn {
		return out
	}
	f := Finding{File: o.File, Line: o.Line, Kind: o.Kind, Namespace: o.Object.GetNamespace(), Name: o.Object.GetName(), Severity: SeverityWarning}
	if o.Kind == "Namespace" {
		f.Namespace = ""
	}
	const applier = "kubectl apply puts objects without metadata.namespace in the namespace of -n, else of the kubeconfig context"
	const fix = "or give moat validate the -n or --kubeconfig that kubectl apply gets"
	if o.NamespaceUnset {
		f.Field = "metadata.namespace"
		f.Message = fmt.Sprintf("not set, and what moat finds depends on it: %s; moat took %q. Set metadata.namespace, %s", applier, f.Namespace, fix)
	} else {
		f.Message = fmt.Sprintf("what moat finds depends on objects without metadata.namespace (a Service, an allowlist): %s; moat took \"default\" for them. Set their metadata.namespace, %s", applier, fix)
	}
	return append(out, f)
}
