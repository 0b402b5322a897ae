package validation

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
)

// mapCluster answers Cluster lookups from maps: a plain in-memory
// implementation of the lookup interface, as `moat validate` builds one from
// manifests.
type mapCluster struct {
	namespaces map[string]*corev1.Namespace
	services   map[string]*corev1.Service // by namespace/name
	allowlists map[string][]*v1alpha1.NetworkAllowlist
	// err, when set, is returned by every lookup.
	err error
}

var _ Cluster = &mapCluster{}

// newCluster returns a mapCluster holding the given Namespaces, Services and
// NetworkAllowlists.
func newCluster(objs ...any) *mapCluster {
	c := &mapCluster{
		namespaces: map[string]*corev1.Namespace{},
		services:   map[string]*corev1.Service{},
		allowlists: map[string][]*v1alpha1.NetworkAllowlist{},
	}
	for _, obj := range objs {
		c.add(obj)
	}
	return c
}

func (c *mapCluster) add(obj any) {
	switch o := obj.(type) {
	case *corev1.Namespace:
		c.namespaces[o.Name] = o
	case *corev1.Service:
		c.services[o.Namespace+"/"+o.Name] = o
	case *v1alpha1.NetworkAllowlist:
		c.allowlists[o.Namespace] = append(c.allowlists[o.Namespace], o)
	default:
		panic(fmt.Sprintf("mapCluster cannot hold %T", obj))
	}
}

func (c *mapCluster) Service(namespace, name string) (*corev1.Service, error) {
	if c.err != nil {
		return nil, c.err
	}
	return c.services[namespace+"/"+name], nil
}

func (c *mapCluster) Namespace(name string) (*corev1.Namespace, error) {
	if c.err != nil {
		return nil, c.err
	}
	return c.namespaces[name], nil
}

func (c *mapCluster) Services(namespace string) ([]*corev1.Service, error) {
	if c.err != nil {
		return nil, c.err
	}
	var out []*corev1.Service
	for _, svc := range c.services { // map order: the validator must sort
		if svc.Namespace == namespace {
			out = append(out, svc)
		}
	}
	return out, nil
}

func (c *mapCluster) Allowlists(namespace string) ([]*v1alpha1.NetworkAllowlist, error) {
	if c.err != nil {
		return nil, c.err
	}
	return c.allowlists[namespace], nil
}

func namespace(name, isolated string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.NamespaceNameLabel: name}}}
	if isolated != "" {
		ns.Labels[v1alpha1.IsolationLabel] = isolated
	}
	return ns
}

func service(ns, name string, tweak func(*corev1.Service)) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
	}
	if tweak != nil {
		tweak(svc)
	}
	return svc
}

// checkFindings compares whole error lists (types, paths, values and
// messages) and whole warning lists.
func checkFindings(t *testing.T, gotErrs field.ErrorList, warnings []Warning, wantErrs field.ErrorList, wantWarnings []string) {
	t.Helper()
	gotWarnings := Strings(warnings)
	if diff := cmp.Diff(wantErrs, gotErrs, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("errors (-want +got):\n%s\ngot:\n%s", diff, gotErrs.ToAggregate())
	}
	if diff := cmp.Diff(wantWarnings, gotWarnings, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}
