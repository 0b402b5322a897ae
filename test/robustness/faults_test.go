package robustness

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/test/workload"
)

// burstProjects is how many projects a burst creates, and burstWorkers how
// many are created at the same time.
const (
	burstProjects = 40
	burstWorkers  = 8
)

// createRetrying creates obj, retrying every failure (the API server or
// moat's webhooks may be down) until it is stored or the deadline passes.
// AlreadyExists after a retry means an earlier attempt was stored.
func createRetrying(ctx context.Context, obj client.Object) error {
	for {
		err := admin.Create(ctx, obj.DeepCopyObject().(client.Object))
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("creating %T %s/%s: %w (last error: %v)", obj, obj.GetNamespace(), obj.GetName(), ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// burst creates burstProjects isolated projects (Namespace labelled
// moat.dev/isolated, Service, allowlist) named prefix-N, runs fault once a
// third of them are stored while the rest are still being created, and then
// checks that moat converges: every project holds exactly the
// NetworkPolicies policy.Render gives (no more, no fewer, no duplicates)
// and its allowlist reports Applied; every object was stored once.
func burst(t *testing.T, prefix string, fault func(t *testing.T)) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	name := func(i int) string { return fmt.Sprintf("%s-%02d", prefix, i) }

	var (
		next, stored atomic.Int64
		wg           sync.WaitGroup
		errs         = make(chan error, burstWorkers)
		third        = make(chan struct{})
		once         sync.Once
	)
	for range burstWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= burstProjects {
					return
				}
				ns := name(i)
				svc, al := workload.Project(ns)
				for _, obj := range []client.Object{
					&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{v1alpha1.IsolationLabel: "true"}}},
					svc, al,
				} {
					if err := createRetrying(ctx, obj); err != nil {
						errs <- err
						return
					}
				}
				if stored.Add(1) == burstProjects/3 {
					once.Do(func() { close(third) })
				}
			}
		})
	}
	select {
	case <-third:
	case err := <-errs:
		t.Fatal(err)
	}
	fault(t)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Converged: poll the API server (not a cache) until every project is
	// exactly as it must be, or report the first difference.
	want := map[string][]networkingv1.NetworkPolicy{}
	for i := range burstProjects {
		ps, err := workload.ExpectedPolicies(name(i))
		if err != nil {
			t.Fatal(err)
		}
		want[name(i)] = ps
	}
	var problem string
	for {
		problem = projectsDiffer(ctx, want)
		if problem == "" || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if problem != "" {
		t.Fatalf("moat did not converge after the fault: %s", problem)
	}
	alive(t)
}

// projectsDiffer returns the first way in which the stored projects differ
// from want, or "" when they are exactly as wanted.
func projectsDiffer(ctx context.Context, want map[string][]networkingv1.NetworkPolicy) string {
	for ns, policies := range want {
		list := &networkingv1.NetworkPolicyList{}
		if err := admin.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err.Error()
		}
		var got, wantNames []string
		for _, np := range list.Items {
			got = append(got, np.Name)
		}
		for _, np := range policies {
			wantNames = append(wantNames, np.Name)
		}
		slices.Sort(got)
		slices.Sort(wantNames)
		if !slices.Equal(got, wantNames) {
			return fmt.Sprintf("namespace %s holds NetworkPolicies %v, want exactly %v", ns, got, wantNames)
		}
		for _, w := range policies {
			i := slices.IndexFunc(list.Items, func(np networkingv1.NetworkPolicy) bool { return np.Name == w.Name })
			np := list.Items[i]
			if !policy.IsManaged(&np) || !equality.Semantic.DeepEqual(np.Spec, w.Spec) {
				return fmt.Sprintf("NetworkPolicy %s/%s: managed %v, spec %+v; want managed with spec %+v", ns, np.Name, policy.IsManaged(&np), np.Spec, w.Spec)
			}
		}
		als := &v1alpha1.NetworkAllowlistList{}
		if err := admin.List(ctx, als, client.InNamespace(ns)); err != nil {
			return err.Error()
		}
		if len(als.Items) != 1 {
			return fmt.Sprintf("namespace %s holds %d allowlists, want 1", ns, len(als.Items))
		}
		al := als.Items[0]
		cond := meta.FindStatusCondition(al.Status.Conditions, v1alpha1.ConditionReady)
		if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != v1alpha1.ReasonApplied || al.Status.ObservedGeneration != al.Generation {
			return fmt.Sprintf("allowlist %s/web: status %+v, want Ready=True Applied for generation %d", ns, al.Status, al.Generation)
		}
		svcs := &corev1.ServiceList{}
		if err := admin.List(ctx, svcs, client.InNamespace(ns)); err != nil {
			return err.Error()
		}
		if len(svcs.Items) != 1 {
			return fmt.Sprintf("namespace %s holds %d Services, want 1", ns, len(svcs.Items))
		}
	}
	return ""
}

// TestAPIServerRestartDuringBurst stops kube-apiserver while projects are
// being created and starts it again on the same etcd: moat (its watches,
// its writes in flight) must recover and converge every project.
func TestAPIServerRestartDuringBurst(t *testing.T) {
	burst(t, "apiserver-restart", func(t *testing.T) {
		apiServer := env.ControlPlane.GetAPIServer()
		// kube-apiserver may not finish its graceful shutdown within
		// envtest's stop timeout while clients keep it busy; envtest then
		// kills it, which is the harder fault. Either way it is gone.
		if err := apiServer.Stop(); err != nil && !strings.HasPrefix(err.Error(), "timeout waiting for process kube-apiserver to stop") {
			t.Fatalf("stopping kube-apiserver: %v", err)
		}
		time.Sleep(3 * time.Second)
		if err := apiServer.Start(); err != nil {
			t.Fatalf("starting kube-apiserver again: %v", err)
		}
	})
}

// TestMoatRestartDuringBurst kills `moat serve` (SIGKILL, no graceful
// shutdown) while projects are being created and starts a new one: the new
// process must pick up what the old one left half-done and converge every
// project, writing no duplicates.
func TestMoatRestartDuringBurst(t *testing.T) {
	burst(t, "moat-restart", func(t *testing.T) {
		stopMoat(syscall.SIGKILL)
		time.Sleep(time.Second)
		if err := startMoat(); err != nil {
			t.Fatalf("starting moat serve again: %v", err)
		}
	})
}
