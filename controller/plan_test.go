package controller

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"moat.dev/moat/policy"
)

// apiCalls counts the reads that reach the fake API server.
type apiCalls struct {
	mu    sync.Mutex
	calls []string
}

func (a *apiCalls) record(call string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, call)
}

func countingAPIReader(t *testing.T, calls *apiCalls, objs ...client.Object) client.Reader {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			calls.record("get " + key.String())
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lo := (&client.ListOptions{}).ApplyOptions(opts)
			calls.record("list " + lo.Namespace)
			return c.List(ctx, list, opts...)
		},
	}).Build()
}

func managedPolicy(name string, types ...networkingv1.PolicyType) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "p", Name: name, Labels: policy.ManagedLabels()},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: types},
	}
}

// TestPlanReadsEachPolicyMissingFromTheCache: the policies missing from the
// cache, and only those, are read from the API server, each with a GET (read
// from etcd at once, unlike a List that waits for the watch cache).
func TestPlanReadsEachPolicyMissingFromTheCache(t *testing.T) {
	ingress := networkingv1.PolicyTypeIngress
	desired := []networkingv1.NetworkPolicy{
		managedPolicy("absent", ingress),
		managedPolicy("user-owned", ingress),
		managedPolicy("stored-same", ingress),
		managedPolicy("stored-different", ingress),
		managedPolicy("cached-different", ingress),
		managedPolicy("cached-same", ingress),
	}
	userOwned := managedPolicy("user-owned", ingress)
	userOwned.Labels = map[string]string{"team": "web"}
	stored := []client.Object{
		&userOwned,
		new(managedPolicy("stored-same", ingress)),
		new(managedPolicy("stored-different", networkingv1.PolicyTypeEgress)),
		// Another namespace's policy of a wanted name changes nothing.
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "q", Name: "absent"}},
	}
	live := map[string]*networkingv1.NetworkPolicy{
		"cached-different": new(managedPolicy("cached-different", networkingv1.PolicyTypeEgress)),
		"cached-same":      new(managedPolicy("cached-same", ingress)),
	}
	calls := &apiCalls{}
	r := &Reconciler{apiReader: countingAPIReader(t, calls, stored...)}

	got, err := r.plan(t.Context(), desired, live)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"absent", "stored-different", "cached-different"}, names(got.apply)); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"user-owned"}, got.conflicts); diff != "" {
		t.Errorf("conflicts (-want +got):\n%s", diff)
	}
	if len(got.delete) != 0 {
		t.Errorf("deletes %v, want none", got.delete)
	}
	slices.Sort(calls.calls)
	if diff := cmp.Diff([]string{"get p/absent", "get p/stored-different", "get p/stored-same", "get p/user-owned"}, calls.calls); diff != "" {
		t.Errorf("reads from the API server (-want +got):\n%s", diff)
	}
}

func TestPlanDoesNotReadTheAPIServerWhenTheCacheHoldsEveryPolicy(t *testing.T) {
	ingress := networkingv1.PolicyTypeIngress
	desired := []networkingv1.NetworkPolicy{managedPolicy("a", ingress), managedPolicy("b", ingress)}
	live := map[string]*networkingv1.NetworkPolicy{
		"a": new(managedPolicy("a", networkingv1.PolicyTypeEgress)),
		"b": new(managedPolicy("b", ingress)),
	}
	calls := &apiCalls{}
	r := &Reconciler{apiReader: countingAPIReader(t, calls)}
	got, err := r.plan(t.Context(), desired, live)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a"}, names(got.apply)); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if len(calls.calls) != 0 {
		t.Errorf("reads from the API server %v, want none", calls.calls)
	}
}
