package manifest

import (
	"cmp"
	"io"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/validation"
)

// Index holds the objects read from manifests and answers the lookups of
// validation.Cluster (and so policy.Services) from them. With a live cluster
// reader set, objects missing from the manifests are looked up there.
//
// When the manifests define the same object more than once, lookups see the
// last definition read: the one that `kubectl apply` leaves in place, as it
// applies in the order it reads (Source.Files).
type Index struct {
	// Objects lists the objects read, in the order read (kubectl apply's):
	// every object, except NetworkPolicies when a NetworkPolicy hook is set.
	Objects []Object
	// Errors lists every document that could not be read, sorted by position.
	Errors []*Error
	// ObjectsRead counts the objects read, of every kind moat reads.
	ObjectsRead int

	// onNetworkPolicy, when set, receives each NetworkPolicy instead of
	// Objects: nothing looks NetworkPolicies up, so they need not be kept.
	onNetworkPolicy func(*Object)
	// warnNamespaceUnset makes Validate warn where a finding depends on the
	// namespace kubectl apply gives objects without one (CheckSource).
	warnNamespaceUnset bool
	// unset has the kinds and namespaces of objects without
	// metadata.namespace (unsetKinds).
	unset map[kindIn]bool
	// records has the identity of every object read, for Duplicates.
	records []record

	services   map[types.NamespacedName]*Object
	namespaces map[string]*Object
	allowlists map[types.NamespacedName]*Object
	// nodes and apiServerSlices (the EndpointSlices of default/kubernetes)
	// are by name; see clustertraffic.go.
	nodes           map[string]*Object
	apiServerSlices map[string]*Object
	// servicesIn and allowlistsIn hold the Services and allowlists of the
	// manifests by namespace, sorted by name: a lookup costs what it
	// returns, not a scan of every namespace.
	servicesIn   map[string][]*corev1.Service
	allowlistsIn map[string][]*v1alpha1.NetworkAllowlist
	// facts derives what allowlist validation reads of a namespace once.
	facts *validation.FactCache

	live Cluster
}

var (
	_ validation.Cluster    = (*Index)(nil)
	_ validation.FactSource = (*Index)(nil)
)

// Cluster is what an Index asks a live cluster: the lookups of validation
// and the cluster-wide facts of rendering. A lookup.Session (the webhook's
// lookups) serves it and reads each object at most once; see NewCluster.
type Cluster interface {
	validation.Cluster
	// Nodes returns every Node.
	Nodes() ([]*corev1.Node, error)
	// APIServerEndpointSlices returns the EndpointSlices of the API
	// server's Service.
	APIServerEndpointSlices() ([]*discoveryv1.EndpointSlice, error)
}

// NewIndex returns an empty index. live may be nil; otherwise it answers
// lookups for objects that the manifests do not define (NewCluster).
func NewIndex(live Cluster) *Index {
	return &Index{live: live}
}

// Load reads paths (see ReadPaths) into a new index. The error is an I/O
// error; problems with the content are in Index.Errors.
func Load(paths []string, stdin io.Reader, live Cluster) (*Index, error) {
	return LoadSource(Source{Filenames: paths, Recursive: true}, stdin, live)
}

// LoadSource reads what `kubectl apply` reads for src (see Source.Read) into
// a new index, every object kept. The error is an I/O error; problems with
// the content are in Index.Errors.
func LoadSource(src Source, stdin io.Reader, live Cluster) (*Index, error) {
	x := NewIndex(live)
	x.warnNamespaceUnset = src.Namespace == ""
	if err := src.Read(stdin, x); err != nil {
		return nil, err
	}
	x.Build()
	return x, nil
}

// record identifies an object read.
type record struct {
	Position
	kind, namespace, name string
}

// Object records an object; it implements Handler.
func (x *Index) Object(o Object) {
	x.ObjectsRead++
	x.records = append(x.records, record{o.Position, o.Kind, o.Object.GetNamespace(), o.Object.GetName()})
	if _, ok := o.Object.(*networkingv1.NetworkPolicy); ok && x.onNetworkPolicy != nil {
		x.onNetworkPolicy(&o)
		return
	}
	x.Objects = append(x.Objects, o)
}

// Error records a read problem; it implements Handler.
func (x *Index) Error(e *Error) {
	x.Errors = append(x.Errors, e)
}

// Build sorts the errors by position and builds the lookup tables. Call it
// once after the last Object.
func (x *Index) Build() {
	sort.SliceStable(x.Errors, func(i, j int) bool { return x.Errors[i].Position.Less(x.Errors[j].Position) })
	x.services = map[types.NamespacedName]*Object{}
	x.namespaces = map[string]*Object{}
	x.allowlists = map[types.NamespacedName]*Object{}
	x.nodes = map[string]*Object{}
	x.apiServerSlices = map[string]*Object{}
	for i := range x.Objects {
		o := &x.Objects[i]
		key := types.NamespacedName{Namespace: o.Object.GetNamespace(), Name: o.Object.GetName()}
		// Objects are in kubectl apply's order: the last definition wins.
		switch o.Object.(type) {
		case *corev1.Service:
			x.services[key] = o
		case *corev1.Namespace:
			x.namespaces[key.Name] = o
		case *v1alpha1.NetworkAllowlist:
			x.allowlists[key] = o
		case *corev1.Node, *discoveryv1.EndpointSlice:
			x.indexClusterObject(o)
		}
	}
	x.servicesIn = byNamespace[*corev1.Service](x.services)
	x.allowlistsIn = byNamespace[*v1alpha1.NetworkAllowlist](x.allowlists)
	x.facts = validation.NewFactCache(x)
}

// byNamespace groups the objects of a table by namespace, sorted by name.
func byNamespace[T client.Object](table map[types.NamespacedName]*Object) map[string][]T {
	out := map[string][]T{}
	for k, o := range table {
		out[k.Namespace] = append(out[k.Namespace], o.Object.(T))
	}
	for _, objs := range out {
		slices.SortFunc(objs, func(a, b T) int { return cmp.Compare(a.GetName(), b.GetName()) })
	}
	return out
}

// Duplicate is an object defined more than once: where, and where the
// previous definition of the same kind, namespace and name is.
type Duplicate struct {
	Position
	Kind, Namespace, Name string
	Previous              Position
}

// Duplicates returns every definition of an object that repeats an earlier
// one, in the order read (kubectl apply's), with the position of the
// definition it replaces.
func (x *Index) Duplicates() []Duplicate {
	type key struct{ kind, namespace, name string }
	seen := map[key]Position{}
	var dups []Duplicate
	for _, r := range x.records {
		k := key{r.kind, r.namespace, r.name}
		if p, ok := seen[k]; ok {
			dups = append(dups, Duplicate{Position: r.Position, Kind: r.kind, Namespace: r.namespace, Name: r.name, Previous: p})
		}
		seen[k] = r.Position
	}
	return dups
}

// Namespaces returns the Namespaces defined in the manifests, sorted by name.
func (x *Index) Namespaces() []*corev1.Namespace {
	out := make([]*corev1.Namespace, 0, len(x.namespaces))
	for _, o := range x.namespaces {
		out = append(out, o.Object.(*corev1.Namespace))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Position returns where the manifests define an object of a kind, and false
// when they do not.
func (x *Index) Position(kind, namespace, name string) (Position, bool) {
	var o *Object
	switch kind {
	case "Service":
		o = x.services[types.NamespacedName{Namespace: namespace, Name: name}]
	case "Namespace":
		o = x.namespaces[name]
	case "NetworkAllowlist":
		o = x.allowlists[types.NamespacedName{Namespace: namespace, Name: name}]
	}
	if o == nil {
		return Position{}, false
	}
	return o.Position, true
}

// Service returns the named Service from the manifests, else from the live
// cluster; (nil, nil) when neither has it.
func (x *Index) Service(namespace, name string) (*corev1.Service, error) {
	if o, ok := x.services[types.NamespacedName{Namespace: namespace, Name: name}]; ok {
		return o.Object.(*corev1.Service), nil
	}
	if x.live == nil {
		return nil, nil
	}
	return x.live.Service(namespace, name)
}

// Namespace returns the named Namespace from the manifests, else from the
// live cluster; (nil, nil) when neither has it.
func (x *Index) Namespace(name string) (*corev1.Namespace, error) {
	if o, ok := x.namespaces[name]; ok {
		return o.Object.(*corev1.Namespace), nil
	}
	if x.live == nil {
		return nil, nil
	}
	return x.live.Namespace(name)
}

// Services returns every Service of a namespace, sorted by name: those of the
// manifests, plus those of the live cluster that the manifests do not define.
// The caller must not modify the slice.
func (x *Index) Services(namespace string) ([]*corev1.Service, error) {
	manifests := x.servicesIn[namespace]
	if x.live == nil {
		return manifests, nil
	}
	live, err := x.live.Services(namespace)
	if err != nil {
		return nil, err
	}
	return merge(manifests, live), nil
}

// Allowlists returns every NetworkAllowlist of a namespace, sorted by name:
// those of the manifests, plus those of the live cluster that the manifests
// do not define (none when the cluster does not serve the kind). The caller
// must not modify the slice.
func (x *Index) Allowlists(namespace string) ([]*v1alpha1.NetworkAllowlist, error) {
	manifests := x.allowlistsIn[namespace]
	if x.live == nil {
		return manifests, nil
	}
	// Without moat's CRD installed, there are none.
	live, err := noMatchIsNone(func() ([]*v1alpha1.NetworkAllowlist, error) { return x.live.Allowlists(namespace) })()
	if err != nil {
		return nil, err
	}
	return merge(manifests, live), nil
}

// ServiceFacts returns what allowlist validation reads of the Services of a
// namespace, derived once per namespace; it implements validation.FactSource.
func (x *Index) ServiceFacts(namespace string) (*validation.ServiceFacts, error) {
	return x.facts.ServiceFacts(namespace)
}

// EgressFacts returns what allowlist validation reads of the egress rules of
// the allowlists of a namespace, derived once per namespace; it implements
// validation.FactSource.
func (x *Index) EgressFacts(namespace string) (*validation.EgressFacts, error) {
	return x.facts.EgressFacts(namespace)
}

// merge adds the live objects whose name manifests lacks to (a copy of)
// manifests and sorts by name.
func merge[T client.Object](manifests, live []T) []T {
	defined := make(map[string]bool, len(manifests))
	for _, o := range manifests {
		defined[o.GetName()] = true
	}
	out := slices.Clone(manifests)
	for _, o := range live {
		if !defined[o.GetName()] {
			defined[o.GetName()] = true
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out
}
