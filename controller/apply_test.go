package controller

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// drain returns the Events a FakeRecorder holds.
func drain(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestApplyAllWritesConcurrentlyWithinTheBound: the deny policy is applied
// first and alone; every other apply waits until maxParallelApplies applies
// are in flight at once, which happens only when they are sent concurrently
// (applies sent one after the other would each wait in vain until the
// safety deadline, and the test would fail).
func TestApplyAllWritesConcurrentlyWithinTheBound(t *testing.T) {
	var (
		mu               sync.Mutex
		inFlight, most   int
		applied          []string
		full             = make(chan struct{})
		fullOnce         sync.Once
		deadline, cancel = context.WithTimeout(t.Context(), 20*time.Second)
	)
	defer cancel()
	c := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Apply: func(_ context.Context, _ client.WithWatch, obj runtime.ApplyConfiguration, _ ...client.ApplyOption) error {
			name := obj.(interface{ GetName() string }).GetName()
			mu.Lock()
			if policy.IsDenyPolicy(name) {
				if len(applied) > 0 || inFlight > 0 {
					t.Errorf("%s applied after or beside %v", name, applied)
				}
				applied = append(applied, name)
				mu.Unlock()
				return nil
			}
			inFlight++
			most = max(most, inFlight)
			applied = append(applied, name)
			if inFlight == maxParallelApplies {
				fullOnce.Do(func() { close(full) })
			}
			mu.Unlock()
			select {
			case <-full:
			case <-deadline.Done():
			}
			mu.Lock()
			inFlight--
			mu.Unlock()
			if name == "broken" {
				return errors.New("refused")
			}
			return nil
		},
	}).Build()
	rec := events.NewFakeRecorder(10)
	r := &Reconciler{client: c, recorder: rec}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-p"}}
	nps := []networkingv1.NetworkPolicy{
		managedPolicy(policy.DefaultIngressPolicyName), managedPolicy("a"), managedPolicy("broken"),
		managedPolicy("b"), managedPolicy("c"), managedPolicy("d"),
	}

	failed := r.applyAll(t.Context(), ns, nps, map[string]*networkingv1.NetworkPolicy{})

	if most != maxParallelApplies {
		t.Errorf("at most %d applies in flight, want %d", most, maxParallelApplies)
	}
	if diff := cmp.Diff([]string{"a", "b", "broken", "c", "d", policy.DefaultIngressPolicyName}, applied, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if len(failed) != 1 || failed["broken"] == nil {
		t.Errorf("failed %v, want only broken", failed)
	}
	want := []string{"Normal " + EventIsolationEnabled + " isolation is on: created NetworkPolicy " + policy.DefaultIngressPolicyName + ", ingress from other namespaces is now denied"}
	if diff := cmp.Diff(want, drain(rec)); diff != "" {
		t.Errorf("Events (-want +got):\n%s", diff)
	}
}

// TestApplyAllRecordsNoEventWhenTheDefaultPolicyExisted: rewriting a default
// policy that was there, or writing for a namespace not stored yet, records
// nothing.
func TestApplyAllRecordsNoEventWhenTheDefaultPolicyExisted(t *testing.T) {
	c := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Apply: func(context.Context, client.WithWatch, runtime.ApplyConfiguration, ...client.ApplyOption) error {
			return nil
		},
	}).Build()
	rec := events.NewFakeRecorder(10)
	r := &Reconciler{client: c, recorder: rec}
	def := managedPolicy(policy.DefaultIngressPolicyName)
	stored := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-p"}}
	if failed := r.applyAll(t.Context(), stored, []networkingv1.NetworkPolicy{def, managedPolicy("a")},
		map[string]*networkingv1.NetworkPolicy{def.Name: &def}); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	unstored := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	if failed := r.applyAll(t.Context(), unstored, []networkingv1.NetworkPolicy{def}, nil); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	if got := drain(rec); len(got) != 0 {
		t.Errorf("Events %v, want none", got)
	}
}

// TestUpdateStatusEvents: an allowlist whose namespace becomes isolated
// records no Event of its own (the namespace's IsolationEnabled tells it);
// one that recovers from a problem says so.
func TestUpdateStatusEvents(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		before string
		want   []string
	}{
		"isolation turned on":      {v1alpha1.ReasonIsolationDisabled, nil},
		"a Service appeared again": {v1alpha1.ReasonServiceNotFound, []string{"Normal " + v1alpha1.ReasonApplied + " every rule is in force again"}},
		"first status":             {"", nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			al := &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: "p", Name: "web", Generation: 1}}
			if tt.before != "" {
				al.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: tt.before,
					Message: "before", ObservedGeneration: 1, LastTransitionTime: metav1.Now()}}
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(al.DeepCopy()).WithStatusSubresource(&v1alpha1.NetworkAllowlist{}).Build()
			stored := &v1alpha1.NetworkAllowlist{}
			if err := c.Get(t.Context(), client.ObjectKeyFromObject(al), stored); err != nil {
				t.Fatal(err)
			}
			rec := events.NewFakeRecorder(10)
			r := &Reconciler{client: c, recorder: rec}
			if err := r.updateStatus(t.Context(), stored, policy.AllowlistResult{Policies: []string{"moat-allowlist-web"}}, nil, nil); err != nil {
				t.Fatal(err)
			}
			after := &v1alpha1.NetworkAllowlist{}
			if err := c.Get(t.Context(), client.ObjectKeyFromObject(al), after); err != nil {
				t.Fatal(err)
			}
			if got := readyReason(after.Status); got != v1alpha1.ReasonApplied {
				t.Fatalf("Ready reason %q, want %q", got, v1alpha1.ReasonApplied)
			}
			if diff := cmp.Diff(tt.want, drain(rec)); diff != "" {
				t.Errorf("Events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUpdateStatusSkipsSupersededVersions: when the cache already holds a
// newer version of the allowlist, or knows it is gone, the status write at
// the old version would only fail (409, 404): none is sent. At the cached
// version it is.
func TestUpdateStatusSkipsSupersededVersions(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		change    func(t *testing.T, c client.Client, al *v1alpha1.NetworkAllowlist)
		wantWrite bool
	}{
		"the version the cache holds": {change: func(*testing.T, client.Client, *v1alpha1.NetworkAllowlist) {}, wantWrite: true},
		"a newer version in the cache": {change: func(t *testing.T, c client.Client, al *v1alpha1.NetworkAllowlist) {
			newer := al.DeepCopy()
			newer.Labels = map[string]string{"changed": "yes"}
			if err := c.Update(t.Context(), newer); err != nil {
				t.Fatal(err)
			}
		}},
		"deleted": {change: func(t *testing.T, c client.Client, al *v1alpha1.NetworkAllowlist) {
			if err := c.Delete(t.Context(), al.DeepCopy()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			al := &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: "p", Name: "web", Generation: 1}}
			var writes int
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(al).WithStatusSubresource(&v1alpha1.NetworkAllowlist{}).
				WithInterceptorFuncs(interceptor.Funcs{
					SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
						writes++
						return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
					},
				}).Build()
			stored := &v1alpha1.NetworkAllowlist{}
			if err := c.Get(t.Context(), client.ObjectKeyFromObject(al), stored); err != nil {
				t.Fatal(err)
			}
			tt.change(t, c, stored)
			r := &Reconciler{client: c, recorder: events.NewFakeRecorder(10)}
			if err := r.updateStatus(t.Context(), stored, policy.AllowlistResult{Policies: []string{"moat-allowlist-web"}}, nil, nil); err != nil {
				t.Fatal(err)
			}
			if got := writes == 1; got != tt.wantWrite || writes > 1 {
				t.Fatalf("%d status writes, want a write: %v", writes, tt.wantWrite)
			}
		})
	}
}
