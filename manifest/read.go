// Package manifest reads Kubernetes manifests (multi-document YAML, JSON
// streams, List objects, directories, stdin) into typed objects that remember
// the file and line they came from, indexes them so that validation and policy
// lookups can be answered offline, and runs moat's validation and rendering on
// them for `moat validate` and `moat render`.
package manifest

import (
	"fmt"
	"io"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kjson "sigs.k8s.io/json"

	"moat.dev/moat/api/v1alpha1"
)

// Stdin is the path that stands for standard input, and StdinName the file
// name that positions of objects read from it carry.
const (
	Stdin     = "-"
	StdinName = "<stdin>"
)

// lastAppliedAnnotation holds a full copy of the object written by
// `kubectl apply`; it is dropped on read so that large inputs stay small.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// Position is where an object (or a problem) starts: the file and the
// 1-based line of the first line of its document or List item.
type Position struct {
	File string
	Line int
}

// String formats the position as file:line.
func (p Position) String() string {
	return p.File + ":" + strconv.Itoa(p.Line)
}

// Less orders positions by file name, then line.
func (p Position) Less(q Position) bool {
	if p.File != q.File {
		return p.File < q.File
	}
	return p.Line < q.Line
}

// Object is one object of a kind that moat validates or looks up, decoded
// into its typed form.
type Object struct {
	Position
	// Object is a *v1alpha1.NetworkAllowlist, *networkingv1.NetworkPolicy,
	// *corev1.Service or *corev1.Namespace. Objects without a namespace of a
	// namespaced kind are put into "default", as kubectl does without -n
	// or a kubeconfig (Source.Read puts them into Source.Namespace).
	Object client.Object
	// Kind is the object's kind (NetworkAllowlist, NetworkPolicy, Service or
	// Namespace).
	Kind string
	// NamespaceUnset is true for an object of a namespaced kind without
	// metadata.namespace: kubectl apply puts it in the namespace of -n or of
	// the kubeconfig context (see Source.Namespace).
	NamespaceUnset bool
	// Unknown lists the paths of the fields of the input that the kind does
	// not have (a typo such as "ipblock", which the API server rejects).
	Unknown []string
}

// Error is a document (or List item) that kubectl would refuse or moat
// cannot read: bad YAML or JSON, a document that is not an object, one
// without apiVersion or kind, or one past a documented limit.
type Error struct {
	Position
	// Kind, Namespace and Name identify the object when they could be read.
	Kind, Namespace, Name string
	Message               string
}

// Error formats the problem as file:line: message.
func (e *Error) Error() string {
	return e.Position.String() + ": " + e.Message
}

// Handler receives every object and every read problem, in input order.
type Handler interface {
	Object(Object)
	Error(*Error)
}

// supported maps the group/kind of every type moat reads to its version and
// a constructor. Objects of other kinds are skipped without being decoded.
var supported = map[schema.GroupKind]struct {
	version    string
	namespaced bool
	newObject  func() client.Object
}{
	{Group: v1alpha1.GroupVersion.Group, Kind: "NetworkAllowlist"}: {v1alpha1.GroupVersion.Version, true, func() client.Object { return &v1alpha1.NetworkAllowlist{} }},
	{Group: networkingv1.GroupName, Kind: "NetworkPolicy"}:         {"v1", true, func() client.Object { return &networkingv1.NetworkPolicy{} }},
	{Group: corev1.GroupName, Kind: "Service"}:                     {"v1", true, func() client.Object { return &corev1.Service{} }},
	{Group: corev1.GroupName, Kind: "Namespace"}:                   {"v1", false, func() client.Object { return &corev1.Namespace{} }},
	{Group: corev1.GroupName, Kind: "Node"}:                        {"v1", false, func() client.Object { return &corev1.Node{} }},
	{Group: corev1.GroupName, Kind: "Pod"}:                         {"v1", true, func() client.Object { return &corev1.Pod{} }},
	{Group: discoveryv1.GroupName, Kind: "EndpointSlice"}:          {"v1", true, func() client.Object { return &discoveryv1.EndpointSlice{} }},
}

// ReadPaths reads paths as `kubectl apply -R -f PATH...` reads them (see
// Source) and passes objects and document problems to h; the returned error
// is an I/O problem (a path that does not exist or cannot be read) and stops
// reading.
func ReadPaths(paths []string, stdin io.Reader, h Handler) error {
	return Source{Filenames: paths, Recursive: true}.Read(stdin, h)
}

// WalkPaths calls read for each stream that paths name, in order, as
// `kubectl apply -R -f PATH...` reads them (see Source.Walk).
func WalkPaths(paths []string, stdin io.Reader, read func(name string, r io.Reader) error) error {
	return Source{Filenames: paths, Recursive: true}.Walk(stdin, read)
}

// Read reads one stream of manifests named name as `kubectl apply -f`
// reads it (see ReadUnstructured) and decodes every object of a kind that
// moat reads into its typed form, as the API server would decode what kubectl
// sends. The returned error is an I/O error; everything wrong with the
// content goes to h.
func Read(name string, r io.Reader, h Handler) error {
	type event struct {
		obj *Object
		err *Error
	}
	return readParallel(r, func(d rawDoc, emit func(event)) {
		if o, ok := fastObject(name, d); ok {
			emit(event{obj: o})
			return
		}
		readDocument(name, d, func(pos Position, u *unstructured.Unstructured) {
			o, err := decodeObject(pos, u)
			if o != nil || err != nil {
				emit(event{obj: o, err: err})
			}
		}, func(e *Error) { emit(event{err: e}) })
	}, func(e event) {
		if e.err != nil {
			h.Error(e.err)
		} else {
			h.Object(*e.obj)
		}
	})
}

// decodeObject decodes an object of a kind moat reads into its typed form,
// or says why it cannot; it returns neither for other kinds.
func decodeObject(pos Position, u *unstructured.Unstructured) (*Object, *Error) {
	kind := u.GetKind()
	fail := func(msg string) (*Object, *Error) {
		return nil, &Error{Position: pos, Kind: kind, Namespace: u.GetNamespace(), Name: u.GetName(), Message: msg}
	}
	if u.GetAPIVersion() == "" {
		return fail("apiVersion is not set: set it on every object (moat does not guess it from the cluster)")
	}
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil {
		return fail(fmt.Sprintf("invalid apiVersion %q: %v", u.GetAPIVersion(), err))
	}
	t, ok := supported[gv.WithKind(kind).GroupKind()]
	if !ok {
		return nil, nil // a kind moat neither validates nor looks up
	}
	if gv.Version != t.version {
		return fail(fmt.Sprintf("unsupported apiVersion %q for kind %s: use %q", u.GetAPIVersion(), kind, schema.GroupVersion{Group: gv.Group, Version: t.version}.String()))
	}
	// What kubectl sends, decoded as the API server decodes it.
	js, err := u.MarshalJSON()
	if err != nil {
		return fail("cannot encode: " + err.Error())
	}
	obj := t.newObject()
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return fail("cannot decode: " + trimJSONPrefix(err.Error()))
	}
	o := finishObject(pos, kind, t.namespaced, obj)
	for _, e := range strict {
		// The object comes from a map, so it has no duplicate fields: every
		// strict error is an unknown field.
		if fe, ok := e.(kjson.FieldError); ok {
			o.Unknown = append(o.Unknown, fe.FieldPath())
		}
	}
	return &o, nil
}

// finishObject drops what moat never reads from a decoded object (managed
// fields, kubectl's last-applied copy) and puts a namespaced object without
// a namespace into "default" (NamespaceUnset; Source.Read moves it into
// Source.Namespace).
func finishObject(pos Position, kind string, namespaced bool, obj client.Object) Object {
	obj.SetManagedFields(nil)
	if a := obj.GetAnnotations(); a != nil {
		if _, ok := a[lastAppliedAnnotation]; ok {
			delete(a, lastAppliedAnnotation)
			if len(a) == 0 {
				a = nil
			}
			obj.SetAnnotations(a)
		}
	}
	unset := namespaced && obj.GetNamespace() == ""
	if unset {
		obj.SetNamespace(metav1.NamespaceDefault)
	}
	return Object{Position: pos, Object: obj, Kind: kind, NamespaceUnset: unset}
}

// useFastPath turns fastObject on; tests turn it off to compare the paths.
var useFastPath = true

// fastObject decodes a YAML document of the common subset (fastJSON) of a
// kind moat reads straight into its typed form, as readDocument and
// decodeObject would: the JSON of the subset is exactly what
// sigs.k8s.io/yaml makes of it, unstructured decoding changes none of its
// values, and the typed decoding is the same strict decoding. ok is false
// when the document must take the full path: outside the subset, a List
// (items), a kind moat does not read, or anything that decoding would report
// (unknown or duplicate fields, wrong types, sizes past the limit).
// FuzzFastPath compares the two paths.
func fastObject(name string, d rawDoc) (_ *Object, ok bool) {
	if !useFastPath || d.yaml == nil || len(d.yaml) > maxDocumentBytes {
		return nil, false
	}
	doc, ok := fastJSON(d.yaml)
	if !ok || doc.hasItems || doc.kind == "" || doc.apiVersion == "" || len(doc.json) > maxDocumentBytes {
		return nil, false
	}
	gv, err := schema.ParseGroupVersion(doc.apiVersion)
	if err != nil {
		return nil, false
	}
	t, ok := supported[gv.WithKind(doc.kind).GroupKind()]
	if !ok || gv.Version != t.version {
		return nil, false
	}
	obj := t.newObject()
	if strict, err := kjson.UnmarshalStrict(doc.json, obj); err != nil || len(strict) > 0 {
		return nil, false
	}
	o := finishObject(Position{File: name, Line: d.line}, doc.kind, t.namespaced, obj)
	return &o, true
}
