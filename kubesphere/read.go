package kubesphere

import (
	"cmp"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"moat.dev/moat/manifest"
)

// Stdin is the path that reads standard input.
const Stdin = "-"

// Reader collects the objects that Convert needs from manifests and live
// clusters, remembering where each came from. Objects of other kinds are
// skipped.
type Reader struct {
	Input Input
	// Origins maps each object read to its file (or "<cluster>").
	Origins map[ObjectRef]string
	// Problems are objects that could not be read, with the reason.
	Problems []Problem
}

// NewReader returns an empty Reader.
func NewReader() *Reader {
	return &Reader{Origins: map[ObjectRef]string{}}
}

// ReadPaths reads files, directories and stdin as `kubectl apply -R -f`
// does (manifest.WalkPaths: kubectl's walk, order and extension rules). The
// error is an I/O error; bad content becomes Problems.
func (x *Reader) ReadPaths(paths []string, stdin io.Reader) error {
	return manifest.WalkPaths(paths, stdin, x.Read)
}

// Read reads a stream of YAML documents or JSON objects named name exactly
// as `kubectl apply -f` reads it (manifest.ReadUnstructured): every object
// kubectl would send, List items one by one; a document kubectl would refuse
// becomes a Problem at its line.
func (x *Reader) Read(name string, r io.Reader) error {
	return manifest.ReadUnstructured(name, r, func(_ manifest.Position, u *unstructured.Unstructured) {
		x.Add(u, name)
	}, func(e *manifest.Error) {
		x.Problems = append(x.Problems, Problem{Origin: e.Position.String(), Object: ObjectRef{Kind: cmp.Or(e.Kind, "document"), Namespace: e.Namespace, Name: e.Name},
			Severity: SeverityError, Message: "not read: " + e.Message})
	})
}

// Add adds one object (or the items of a List) read from origin.
func (x *Reader) Add(u *unstructured.Unstructured, origin string) {
	if u.IsList() {
		list, err := u.ToList()
		if err != nil {
			x.problem(ObjectRef{Kind: u.GetKind(), Name: u.GetName()}, origin, "", err.Error())
			return
		}
		for i := range list.Items {
			x.Add(&list.Items[i], origin)
		}
		return
	}
	gvk := u.GroupVersionKind()
	ref := ObjectRef{Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
	switch gvk.GroupKind() {
	case NamespaceNetworkPolicyKind:
		if gvk.Version != "v1alpha1" {
			x.problem(ref, origin, "apiVersion", fmt.Sprintf("%q is not supported: KubeSphere serves %s/v1alpha1", gvk.GroupVersion(), gvk.Group))
			return
		}
		np := &NamespaceNetworkPolicy{}
		if !x.decode(u, np, ref, origin) {
			return
		}
		if np.Namespace == "" {
			np.Namespace = "default"
		}
		x.Input.Policies = append(x.Input.Policies, np)
	case WorkspaceKind, WorkspaceTemplateKind:
		path := []string{"spec", "networkIsolation"}
		if gvk.Kind == WorkspaceTemplateKind.Kind {
			path = []string{"spec", "template", "spec", "networkIsolation"}
		}
		on, _, err := unstructured.NestedBool(u.Object, path...)
		if err != nil {
			x.problem(ref, origin, strings.Join(path, "."), "must be true or false: "+err.Error())
			return
		}
		x.Input.Workspaces = append(x.Input.Workspaces, Workspace{Name: u.GetName(), NetworkIsolation: on})
	case schema.GroupKind{Kind: "Namespace"}:
		ns := &corev1.Namespace{}
		if x.decode(u, ns, ref, origin) {
			x.Input.Namespaces = append(x.Input.Namespaces, ns)
		}
	case schema.GroupKind{Kind: "Service"}:
		svc := &corev1.Service{}
		if x.decode(u, svc, ref, origin) {
			if svc.Namespace == "" {
				svc.Namespace = "default"
			}
			x.Input.Services = append(x.Input.Services, svc)
		}
	case schema.GroupKind{Kind: "Node"}:
		node := &corev1.Node{}
		if x.decode(u, node, ref, origin) {
			x.Input.Nodes = append(x.Input.Nodes, node)
		}
	default:
		return
	}
	x.Origins[ref] = origin
}

// decode converts u into obj, refusing fields that obj does not have (a
// misspelt field would otherwise change the meaning silently).
func (x *Reader) decode(u *unstructured.Unstructured, obj any, ref ObjectRef, origin string) bool {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, obj, true); err != nil {
		x.problem(ref, origin, "", "not read: "+err.Error()+": fix or remove the field")
		return false
	}
	return true
}

func (x *Reader) problem(ref ObjectRef, origin, fld, msg string) {
	x.Problems = append(x.Problems, Problem{Origin: origin, Object: ref, Field: fld, Message: msg, Severity: SeverityError})
}

// Locate fills in the Origin of problems about objects this Reader read.
func (x *Reader) Locate(problems []Problem) {
	for i := range problems {
		if problems[i].Origin == "" {
			problems[i].Origin = x.Origins[problems[i].Object]
		}
	}
}
