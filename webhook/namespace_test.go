package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// recordingConverger records the namespaces it is asked to converge and
// fails with err.
type recordingConverger struct {
	calls []*corev1.Namespace
	err   error
}

func (c *recordingConverger) ApplyNamespace(_ context.Context, ns *corev1.Namespace) error {
	c.calls = append(c.calls, ns.DeepCopy())
	return c.err
}

func namespace(labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: "demo-project-1", Labels: labels},
	}
}

func raw(t *testing.T, obj runtime.Object) runtime.RawExtension {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: data}
}

func namespaceRequest(t *testing.T, op admissionv1.Operation, old, ns *corev1.Namespace, dryRun bool) admission.Request {
	t.Helper()
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid",
		Operation: op,
		Name:      ns.Name,
		Object:    raw(t, ns),
		DryRun:    ptr.To(dryRun),
	}}
	if old != nil {
		req.OldObject = raw(t, old)
	}
	return req
}

func newMutator(c Converger) *NamespaceMutator {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	return &NamespaceMutator{Converger: c, Decoder: admission.NewDecoder(scheme), Timeout: DefaultApplyTimeout}
}

var (
	unlabelled  = map[string]string{"team": "a"}
	isolated    = map[string]string{"team": "a", v1alpha1.IsolationLabel: "true"}
	notIsolated = map[string]string{"team": "a", v1alpha1.IsolationLabel: "false"}
)

func TestNamespaceMutatorApplies(t *testing.T) {
	for name, oldLabels := range map[string]map[string]string{"no label": unlabelled, "false": notIsolated} {
		t.Run(name, func(t *testing.T) {
			conv := &recordingConverger{}
			before := testutil.ToFloat64(isolationApplies.WithLabelValues(resultSuccess))
			old := namespace(oldLabels)
			old.ResourceVersion = "41"
			resp := newMutator(conv).Handle(context.Background(),
				namespaceRequest(t, admissionv1.Update, old, namespace(isolated), false))

			if !resp.Allowed || len(resp.Patches) != 0 || resp.PatchType != nil || len(resp.Warnings) != 0 {
				t.Errorf("response = %+v, want allowed without patch or warning", resp)
			}
			// The Converger sees the namespace as it is about to be stored,
			// at the version of the stored namespace the request changes.
			want := namespace(isolated)
			want.ResourceVersion = "41"
			if diff := cmp.Diff([]*corev1.Namespace{want}, conv.calls); diff != "" {
				t.Errorf("ApplyNamespace calls (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(isolationApplies.WithLabelValues(resultSuccess)) - before; got != 1 {
				t.Errorf("success counter grew by %v, want 1", got)
			}
		})
	}
}

// TestNamespaceMutatorReportsNamesTaken: issue 20, case 9. Policies that
// moat does not manage hold the names of its own: the labelling is admitted
// with one warning per name, alone or next to the warning of a failed write.
func TestNamespaceMutatorReportsNamesTaken(t *testing.T) {
	taken := &policy.NamesTakenError{Namespace: "demo-project-1", Names: []string{"moat-allowlist-web", "moat-default-ingress"}}
	wantTaken := []string{
		`NetworkPolicy demo-project-1/moat-allowlist-web exists and is not managed by moat (it lacks the label app.kubernetes.io/managed-by=moat), so moat did not write its own policy of that name and what moat would enforce with it is missing; delete or rename it (names starting with "moat-" are moat's) and moat writes its own within seconds`,
		`NetworkPolicy demo-project-1/moat-default-ingress exists and is not managed by moat (it lacks the label app.kubernetes.io/managed-by=moat), so moat did not write its own policy of that name and the namespace is NOT isolated: its ingress stays as that policy says; delete or rename it (names starting with "moat-" are moat's) and moat writes its own within seconds`,
	}
	failed := errors.New("applying NetworkPolicy demo-project-1/moat-default-egress: boom")
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"names taken only", taken, wantTaken},
		{"names taken and a failed write", errors.Join(failed, taken), append(slices.Clone(wantTaken),
			"moat could not write the isolation NetworkPolicies of namespace demo-project-1 during this request; its controller applies them shortly ("+failed.Error()+")")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(isolationApplies.WithLabelValues(resultFailure))
			resp := newMutator(&recordingConverger{err: tc.err}).Handle(context.Background(),
				namespaceRequest(t, admissionv1.Update, namespace(unlabelled), namespace(isolated), false))
			if !resp.Allowed {
				t.Errorf("response = %+v, want allowed", resp)
			}
			if diff := cmp.Diff(tc.want, []string(resp.Warnings)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(isolationApplies.WithLabelValues(resultFailure)) - before; got != 1 {
				t.Errorf("failure counter grew by %v, want 1", got)
			}
		})
	}
}

func TestNamespaceMutatorWritesNothing(t *testing.T) {
	terminating := namespace(isolated)
	terminating.DeletionTimestamp = ptr.To(metav1.Now())
	tests := []struct {
		name     string
		op       admissionv1.Operation
		old, new *corev1.Namespace
		dryRun   bool
	}{
		{"a namespace created isolated (the controller writes its policies)", admissionv1.Create, nil, namespace(isolated), false},
		{"an already isolated namespace", admissionv1.Update, namespace(isolated), namespace(isolated), false},
		{"a namespace that stays unisolated", admissionv1.Update, namespace(unlabelled), namespace(notIsolated), false},
		{"isolation turned off", admissionv1.Update, namespace(isolated), namespace(notIsolated), false},
		{"a dry run", admissionv1.Update, namespace(unlabelled), namespace(isolated), true},
		{"a terminating namespace", admissionv1.Update, namespace(unlabelled), terminating, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conv := &recordingConverger{}
			resp := newMutator(conv).Handle(context.Background(), namespaceRequest(t, tt.op, tt.old, tt.new, tt.dryRun))
			if !resp.Allowed || len(resp.Patches) != 0 || len(resp.Warnings) != 0 {
				t.Errorf("response = %+v, want allowed without patch or warning", resp)
			}
			if len(conv.calls) != 0 {
				t.Errorf("ApplyNamespace called %d times, want never", len(conv.calls))
			}
		})
	}
}

func TestNamespaceMutatorAdmitsWhenTheWriteFails(t *testing.T) {
	conv := &recordingConverger{err: errors.New("etcd is on fire")}
	before := testutil.ToFloat64(isolationApplies.WithLabelValues(resultFailure))
	resp := newMutator(conv).Handle(context.Background(),
		namespaceRequest(t, admissionv1.Update, namespace(unlabelled), namespace(isolated), false))

	if !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("response = %+v, want allowed without patch", resp)
	}
	want := []string{"moat could not write the isolation NetworkPolicies of namespace demo-project-1 during this request; " +
		"its controller applies them shortly (etcd is on fire)"}
	if diff := cmp.Diff(want, resp.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(isolationApplies.WithLabelValues(resultFailure)) - before; got != 1 {
		t.Errorf("failure counter grew by %v, want 1", got)
	}
}

func TestNamespaceValidator(t *testing.T) {
	invalid := func(value string) error {
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind(), "demo-project-1", field.ErrorList{
			field.Invalid(field.NewPath("metadata", "labels").Key(v1alpha1.IsolationLabel), value,
				`must be "true" (isolate the project) or "false" (no isolation), in lower case and quoted in YAML; or remove the label to turn isolation off`),
		})
	}
	withValue := func(v string) *corev1.Namespace {
		return namespace(map[string]string{v1alpha1.IsolationLabel: v})
	}
	v := &NamespaceValidator{}
	ctx := context.Background()

	check := func(t *testing.T, got, want error) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("error (-want +got):\n%s", diff)
		}
	}
	t.Run("create", func(t *testing.T) {
		for value, want := range map[string]error{"true": nil, "false": nil, "yes": invalid("yes"), "True": invalid("True"), "": invalid("")} {
			_, err := v.ValidateCreate(ctx, withValue(value))
			check(t, err, want)
		}
		_, err := v.ValidateCreate(ctx, namespace(nil))
		check(t, err, nil)
	})
	t.Run("update that changes the label", func(t *testing.T) {
		_, err := v.ValidateUpdate(ctx, withValue("false"), withValue("on"))
		check(t, err, invalid("on"))
		_, err = v.ValidateUpdate(ctx, namespace(nil), withValue("true"))
		check(t, err, nil)
	})
	t.Run("update that keeps a value stored before moat", func(t *testing.T) {
		old, updated := withValue("yes"), withValue("yes")
		updated.Labels["team"] = "b"
		_, err := v.ValidateUpdate(ctx, old, updated)
		check(t, err, nil)
	})
	groupInvalid := apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind(), "demo-project-1", field.ErrorList{
		field.Invalid(field.NewPath("metadata", "labels").Key(v1alpha1.GroupIngressLabel), "no",
			`must be "true" (admit the namespaces of the project group, the default) or "false" (admit the namespace alone), in lower case and quoted in YAML; or remove the label`),
	})
	withGroup := func(isolated, group string) *corev1.Namespace {
		return namespace(map[string]string{v1alpha1.IsolationLabel: isolated, v1alpha1.GroupIngressLabel: group})
	}
	t.Run("group ingress label", func(t *testing.T) {
		_, err := v.ValidateCreate(ctx, withGroup("true", "no"))
		check(t, err, groupInvalid)
		_, err = v.ValidateUpdate(ctx, withGroup("true", "false"), withGroup("true", "no"))
		check(t, err, groupInvalid)
		_, err = v.ValidateUpdate(ctx, withGroup("true", "true"), withGroup("true", "false"))
		check(t, err, nil)
	})
	t.Run("each label ratchets on its own", func(t *testing.T) {
		// An invalid isolation value stored before moat does not block a
		// change of the group label, nor the other way round.
		_, err := v.ValidateUpdate(ctx, withGroup("yes", "true"), withGroup("yes", "false"))
		check(t, err, nil)
		_, err = v.ValidateUpdate(ctx, withGroup("false", "no"), withGroup("true", "no"))
		check(t, err, nil)
		_, err = v.ValidateUpdate(ctx, withGroup("false", "no"), withGroup("on", "no"))
		check(t, err, invalid("on"))
	})
}

// preparingConverger splits its work into reads and writes and counts
// both. Its reads signal that they started and then wait (up to a safety
// deadline) for the guard's read of the stored namespace, which itself waits
// for the reads to start (signallingReader): both see each other only when
// they run concurrently.
type preparingConverger struct {
	recordingConverger
	started, guardRead chan struct{}
	prepared           int
	sawGuard           bool
	written            []*corev1.Namespace
}

func (c *preparingConverger) PrepareNamespace(_ context.Context, ns *corev1.Namespace) (func(context.Context) error, error) {
	c.prepared++
	close(c.started)
	select {
	case <-c.guardRead:
		c.sawGuard = true
	case <-time.After(5 * time.Second):
	}
	return func(context.Context) error {
		c.written = append(c.written, ns.DeepCopy())
		return nil
	}, nil
}

// signallingReader is the guard's reader: it waits (up to a safety
// deadline) for the converger's reads to start, reads, and signals it.
type signallingReader struct {
	storedNamespace
	started, read chan struct{}
	sawPrepare    *bool
}

func (s signallingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	select {
	case <-s.started:
		*s.sawPrepare = true
	case <-time.After(5 * time.Second):
	}
	err := s.storedNamespace.Get(ctx, key, obj, opts...)
	close(s.read)
	return err
}

// With a PreparingConverger, the mutator does the converger's reads while
// the guard reads the stored namespace, and writes only what the guard
// admits: a genuine request is written (exactly once, never through
// ApplyNamespace), a forged one (the stored namespace is at another
// version) is prepared but never written.
func TestNamespaceMutatorPreparesWhileTheGuardReads(t *testing.T) {
	stored := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo-project-1", UID: "uid-1", ResourceVersion: "7", Labels: unlabelled}}
	for _, tc := range []struct {
		name        string
		oldVersion  string
		wantWritten int
	}{
		{"genuine", "7", 1},
		{"forged: not the stored version", "6", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, read := make(chan struct{}), make(chan struct{})
			conv := &preparingConverger{started: started, guardRead: read}
			m := newMutator(conv)
			var sawPrepare bool
			m.Guard = &AdmissionWriteGuard{Reader: signallingReader{storedNamespace: storedNamespace{ns: stored}, started: started, read: read, sawPrepare: &sawPrepare}}
			old := stored.DeepCopy()
			old.ResourceVersion = tc.oldVersion
			ns := old.DeepCopy()
			ns.Labels = isolated
			resp := m.Handle(context.Background(), namespaceRequest(t, admissionv1.Update, old, ns, false))
			if !resp.Allowed {
				t.Fatalf("denied: %v", resp.Result)
			}
			if conv.prepared != 1 || !conv.sawGuard || !sawPrepare {
				t.Errorf("prepared %d times; the reads saw the guard's read: %t, the guard's read saw the reads: %t; want once, concurrently",
					conv.prepared, conv.sawGuard, sawPrepare)
			}
			if len(conv.written) != tc.wantWritten || len(conv.calls) != 0 {
				t.Fatalf("written %d times (ApplyNamespace %d times), want %d (and ApplyNamespace never)", len(conv.written), len(conv.calls), tc.wantWritten)
			}
			if tc.wantWritten == 1 && conv.written[0].ResourceVersion != "7" {
				t.Errorf("written at namespace version %q, want the stored version 7", conv.written[0].ResourceVersion)
			}
		})
	}
}
