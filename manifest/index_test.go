package manifest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const indexInput = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: old}}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {selector: {app: db}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: other}
spec: {selector: {app: other}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: new}}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: b, namespace: shop}
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: a, namespace: shop}
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: c}
`

func loadString(t *testing.T, name, in string) *Index {
	t.Helper()
	x := NewIndex(nil)
	if err := Read(name, strings.NewReader(in), x); err != nil {
		t.Fatal(err)
	}
	x.Build()
	if len(x.Errors) > 0 {
		t.Fatalf("read errors: %v", x.Errors)
	}
	return x
}

func TestIndexLookups(t *testing.T) {
	x := loadString(t, "index.yaml", indexInput)

	// The last definition wins.
	web, err := x.Service("shop", "web")
	if err != nil || web == nil || web.Spec.Selector["app"] != "new" {
		t.Errorf("Service(shop, web) = %v, %v; want the second definition (app=new)", web, err)
	}
	if svc, err := x.Service("shop", "missing"); svc != nil || err != nil {
		t.Errorf("Service(shop, missing) = %v, %v; want nil, nil", svc, err)
	}
	services, err := x.Services("shop")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range services {
		names = append(names, s.Namespace+"/"+s.Name+"="+s.Spec.Selector["app"])
	}
	if diff := cmp.Diff([]string{"shop/db=db", "shop/web=new"}, names); diff != "" {
		t.Errorf("Services(shop) (-want +got):\n%s", diff)
	}

	if ns, err := x.Namespace("shop"); err != nil || ns == nil || ns.Name != "shop" {
		t.Errorf("Namespace(shop) = %v, %v", ns, err)
	}
	if ns, err := x.Namespace("nope"); ns != nil || err != nil {
		t.Errorf("Namespace(nope) = %v, %v; want nil, nil", ns, err)
	}

	names = nil
	allowlists, err := x.Allowlists("shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, al := range allowlists {
		names = append(names, al.Name)
	}
	if diff := cmp.Diff([]string{"a", "b"}, names); diff != "" {
		t.Errorf("Allowlists(shop) (-want +got):\n%s", diff)
	}
	// An object without a namespace goes to "default", as with kubectl.
	if al, _ := x.Allowlists("default"); len(al) != 1 || al[0].Name != "c" {
		t.Errorf("Allowlists(default) = %v; want [c]", al)
	}

	if p, ok := x.Position("Service", "shop", "web"); !ok || p != (Position{"index.yaml", 16}) {
		t.Errorf("Position(Service shop/web) = %v, %v; want index.yaml:16", p, ok)
	}
	if _, ok := x.Position("Service", "shop", "missing"); ok {
		t.Error("Position of a missing Service: ok = true")
	}

	want := []Duplicate{{Position: Position{"index.yaml", 16}, Kind: "Service", Namespace: "shop", Name: "web", Previous: Position{"index.yaml", 1}}}
	if diff := cmp.Diff(want, x.Duplicates()); diff != "" {
		t.Errorf("Duplicates (-want +got):\n%s", diff)
	}
	if x.ObjectsRead != 8 || len(x.Objects) != 8 {
		t.Errorf("ObjectsRead = %d, len(Objects) = %d; want 8 and 8", x.ObjectsRead, len(x.Objects))
	}
}
