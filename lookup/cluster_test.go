package lookup_test

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
)

// TestCluster runs the lookups against a real API server (envtest, with the
// binaries `make control-plane` builds into bin/).
func TestCluster(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	env := &envtest.Environment{
		Scheme:                scheme,
		BinaryAssetsDirectory: filepath.Join("..", "bin"),
		CRDDirectoryPaths:     []string{filepath.Join("..", "manifests", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane (run `make control-plane` first): %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mustCreate := func(obj client.Object) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
		}
	}
	for _, ns := range []string{"project-a", "project-b"} {
		mustCreate(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	service := func(namespace, name string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}},
		}
	}
	mustCreate(service("project-a", "web"))
	mustCreate(service("project-a", "api"))
	mustCreate(service("project-b", "db"))
	allowlist := func(namespace, name string) *v1alpha1.NetworkAllowlist {
		return &v1alpha1.NetworkAllowlist{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Spec: v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{
				From: []v1alpha1.Peer{{Namespace: "project-b"}},
			}}},
		}
	}
	mustCreate(allowlist("project-a", "from-b"))
	mustCreate(allowlist("project-b", "from-a"))

	cluster := lookup.New(c).Session(ctx)

	t.Run("Service", func(t *testing.T) {
		svc, err := cluster.Service("project-a", "web")
		if err != nil || svc == nil || svc.Namespace != "project-a" || svc.Name != "web" || svc.Spec.Selector["app"] != "web" {
			t.Errorf("Service(project-a, web) = %v, %v; want the Service", svc, err)
		}
		for _, key := range [][2]string{{"project-a", "db"}, {"no-such-namespace", "web"}} {
			if svc, err := cluster.Service(key[0], key[1]); svc != nil || err != nil {
				t.Errorf("Service(%s, %s) = %v, %v; want nil, nil", key[0], key[1], svc, err)
			}
		}
	})
	t.Run("Namespace", func(t *testing.T) {
		ns, err := cluster.Namespace("project-b")
		if err != nil || ns == nil || ns.Name != "project-b" {
			t.Errorf("Namespace(project-b) = %v, %v; want the Namespace", ns, err)
		}
		if ns, err := cluster.Namespace("no-such-namespace"); ns != nil || err != nil {
			t.Errorf("Namespace(no-such-namespace) = %v, %v; want nil, nil", ns, err)
		}
	})
	t.Run("Services", func(t *testing.T) {
		for namespace, want := range map[string][]string{"project-a": {"api", "web"}, "project-b": {"db"}, "no-such-namespace": {}} {
			services, err := cluster.Services(namespace)
			if err != nil {
				t.Fatalf("Services(%s): %v", namespace, err)
			}
			got := []string{}
			for _, svc := range services {
				if svc.Namespace != namespace {
					t.Errorf("Services(%s) returned %s/%s", namespace, svc.Namespace, svc.Name)
				}
				got = append(got, svc.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("Services(%s) = %v, want %v", namespace, got, want)
			}
		}
	})
	t.Run("Allowlists", func(t *testing.T) {
		for namespace, want := range map[string][]string{"project-a": {"from-b"}, "project-b": {"from-a"}, "no-such-namespace": {}} {
			allowlists, err := cluster.Allowlists(namespace)
			if err != nil {
				t.Fatalf("Allowlists(%s): %v", namespace, err)
			}
			got := []string{}
			for _, al := range allowlists {
				if al.Namespace != namespace || len(al.Spec.Ingress) != 1 {
					t.Errorf("Allowlists(%s) returned %s/%s with spec %+v", namespace, al.Namespace, al.Name, al.Spec)
				}
				got = append(got, al.Name)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Allowlists(%s) = %v, want %v", namespace, got, want)
			}
		}
	})
	t.Run("a Session reads each object and list at most once", func(t *testing.T) {
		counting := &countingReader{Reader: c, reads: map[string]int{}}
		session := lookup.New(counting).Session(ctx)
		for range 3 {
			if svc, err := session.Service("project-a", "web"); err != nil || svc == nil {
				t.Fatalf("Service = %v, %v", svc, err)
			}
			if svc, err := session.Service("project-a", "gone"); err != nil || svc != nil {
				t.Fatalf("Service(gone) = %v, %v", svc, err)
			}
			if ns, err := session.Namespace("project-b"); err != nil || ns == nil {
				t.Fatalf("Namespace = %v, %v", ns, err)
			}
			if _, err := session.Services("project-a"); err != nil {
				t.Fatal(err)
			}
			if _, err := session.Allowlists("project-a"); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]int{
			"get project-a/web": 1, "get project-a/gone": 1, "get /project-b": 1,
			"list *v1.ServiceList project-a": 1, "list *v1alpha1.NetworkAllowlistList project-a": 1,
		}
		if !maps.Equal(counting.reads, want) {
			t.Errorf("reads = %v, want %v", counting.reads, want)
		}
		// A new Session reads again: answers never outlive their request.
		if _, err := lookup.New(counting).Session(ctx).Service("project-a", "web"); err != nil {
			t.Fatal(err)
		}
		if counting.reads["get project-a/web"] != 2 {
			t.Errorf("a second Session did not read again: %v", counting.reads)
		}
	})
	t.Run("NewReadOnly reads the cache's own objects, New copies them", func(t *testing.T) {
		informers, err := cache.New(cfg, cache.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		cacheCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { _ = informers.Start(cacheCtx) }()
		if !informers.WaitForCacheSync(cacheCtx) {
			t.Fatal("cache did not sync")
		}
		// Two Sessions (two requests) reading the same Service and
		// Namespace: read-only lookups share the cache's maps, copying
		// ones do not.
		selectors := func(c *lookup.Cluster) (svcSelector, nsLabels [2]uintptr) {
			t.Helper()
			for i := range 2 {
				session := c.Session(ctx)
				svc, err := session.Service("project-a", "web")
				if err != nil || svc == nil || svc.Spec.Selector["app"] != "web" {
					t.Fatalf("Service(project-a, web) = %v, %v; want the Service", svc, err)
				}
				ns, err := session.Namespace("project-b")
				if err != nil || ns == nil || ns.Labels[corev1.LabelMetadataName] != "project-b" {
					t.Fatalf("Namespace(project-b) = %v, %v; want the Namespace", ns, err)
				}
				svcSelector[i], nsLabels[i] = reflect.ValueOf(svc.Spec.Selector).Pointer(), reflect.ValueOf(ns.Labels).Pointer()
			}
			return svcSelector, nsLabels
		}
		if svcs, nss := selectors(lookup.NewReadOnly(informers)); svcs[0] != svcs[1] || nss[0] != nss[1] {
			t.Errorf("NewReadOnly: two lookups got different copies (Service selector %x, Namespace labels %x)", svcs, nss)
		}
		if svcs, nss := selectors(lookup.New(informers)); svcs[0] == svcs[1] || nss[0] == nss[1] {
			t.Errorf("New: two lookups share the cache's maps (Service selector %x, Namespace labels %x)", svcs, nss)
		}
		// Readers that are not a cache ignore the option.
		if svc, err := lookup.NewReadOnly(c).Session(ctx).Service("project-a", "web"); err != nil || svc == nil || svc.Name != "web" {
			t.Errorf("NewReadOnly(client).Service(project-a, web) = %v, %v; want the Service", svc, err)
		}
		if svc, err := lookup.NewReadOnly(informers).Session(ctx).Service("project-a", "gone"); svc != nil || err != nil {
			t.Errorf("NewReadOnly: Service(project-a, gone) = %v, %v; want nil, nil", svc, err)
		}
	})
	t.Run("a failed read is an error, not a missing object", func(t *testing.T) {
		// A client whose scheme lacks moat's API cannot list allowlists.
		bare := runtime.NewScheme()
		utilruntime.Must(clientgoscheme.AddToScheme(bare))
		bareClient, err := client.New(cfg, client.Options{Scheme: bare})
		if err != nil {
			t.Fatal(err)
		}
		allowlists, err := lookup.New(bareClient).Session(ctx).Allowlists("project-a")
		if err == nil || allowlists != nil || !strings.HasPrefix(err.Error(), "listing NetworkAllowlists in namespace project-a: ") {
			t.Errorf("Allowlists = %v, %v; want nil and a listing error", allowlists, err)
		}
	})
}

// countingReader counts the reads that reach the wrapped reader.
type countingReader struct {
	client.Reader
	reads map[string]int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.reads["get "+key.String()]++
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	c.reads[fmt.Sprintf("list %T %s", list, o.Namespace)]++
	return c.Reader.List(ctx, list, opts...)
}
