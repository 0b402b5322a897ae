package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
	"moat.dev/moat/policy"
	"moat.dev/moat/test/workload"
	"moat.dev/moat/validation"
	"moat.dev/moat/webhook"
)

func benchScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

var tenant = authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}

// benchHandle runs req through h b.N times and fails unless every answer is
// allowed with exactly wantWarnings warnings.
func benchHandle(b *testing.B, h admission.Handler, req admission.Request, wantWarnings int) {
	b.Helper()
	ctx := context.Background()
	resp := h.Handle(ctx, req)
	if !resp.Allowed || len(resp.Warnings) != wantWarnings {
		b.Fatalf("allowed=%v warnings=%q result=%+v, want allowed with %d warnings", resp.Allowed, resp.Warnings, resp.Result, wantWarnings)
	}
	b.ReportAllocs()
	cpu := processCPU(b)
	for b.Loop() {
		if resp := h.Handle(ctx, req); !resp.Allowed {
			b.Fatalf("denied: %+v", resp.Result)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// processCPU returns the CPU time the process has used (user and system, all
// threads, garbage collection included). Per operation it is what a request
// costs the machine, and unlike ns/op it does not grow when other processes
// take the CPU away (the shared development machines).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func request(b *testing.B, op admissionv1.Operation, gvr schema.GroupVersionResource, obj, old runtime.Object, user authenticationv1.UserInfo) admission.Request {
	b.Helper()
	r, err := workload.Review("uid", op, gvr, obj, old, user)
	if err != nil {
		b.Fatal(err)
	}
	return admission.Request{AdmissionRequest: *r.Request}
}

// repoBin returns the repository's bin/ directory (kube-apiserver, etcd).
func repoBin(b *testing.B) string {
	b.Helper()
	dir, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bin")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			b.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// BenchmarkAllowlistTenServiceRules measures the NetworkAllowlist validating
// webhook on a CREATE of an allowlist with ten egress rules to ten Services,
// each looked up in a controller-runtime informer cache that watches a real
// kube-apiserver (envtest) and already holds the Services: every lookup is a
// cache hit, no request reaches the API server. Handle is the decoded
// AdmissionRequest through the webhook as moat serve registers it
// (webhook.NewValidatingWebhook, read-only cached lookups);
// HandleGenericDecoder and HandleGenericDecoderDeepCopy are the same
// validator behind controller-runtime's generic webhook, with and without
// deep copies of the cached Services (what moat did before issue 15);
// NoopHandle is the same request through a generic webhook whose validator
// admits everything, the baseline. ServeHTTP adds the AdmissionReview
// decoding and encoding of controller-runtime's HTTP endpoint. Each reports
// cpu-ns/op beside ns/op (processCPU).
func BenchmarkAllowlistTenServiceRules(b *testing.B) {
	// The cache and envtest log through controller-runtime; keep the
	// benchmark output parseable.
	logf.SetLogger(logr.Discard())
	scheme := benchScheme()
	env := &envtest.Environment{Scheme: scheme, BinaryAssetsDirectory: repoBin(b),
		CRDDirectoryPaths: []string{filepath.Join(repoBin(b), "..", "manifests", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		b.Fatalf("starting kube-apiserver and etcd from bin/ (make control-plane): %v", err)
	}
	b.Cleanup(func() { _ = env.Stop() })

	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "backends"}}); err != nil {
		b.Fatal(err)
	}
	for _, svc := range workload.Services("backends") {
		if err := c.Create(ctx, svc); err != nil {
			b.Fatal(err)
		}
	}
	informers, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	for _, obj := range []client.Object{&corev1.Service{}, &corev1.Namespace{}} {
		if _, err := informers.GetInformer(ctx, obj); err != nil {
			b.Fatal(err)
		}
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		b.Fatal("cache did not sync")
	}
	services := &corev1.ServiceList{}
	if err := informers.List(ctx, services, client.InNamespace("backends")); err != nil || len(services.Items) != workload.Rules {
		b.Fatalf("cache holds %d Services (%v), want %d", len(services.Items), err, workload.Rules)
	}

	// As moat serve sets it up (webhook.SetupWithManager): read-only
	// cached lookups, each object decoded once.
	validator := &webhook.AllowlistValidator{
		Cached: lookup.NewReadOnly(informers),
		// Consulted only when the cache rejects or warns, which it must
		// not here (benchHandle checks there is no warning).
		Live: lookup.New(c),
	}
	wh, err := webhook.NewValidatingWebhook(scheme, admission.Validator[*v1alpha1.NetworkAllowlist](validator))
	if err != nil {
		b.Fatal(err)
	}
	al := workload.TenRuleAllowlist("frontend", "bench", "backends")
	req := request(b, admissionv1.Create, workload.AllowlistsResource, al, nil, tenant)

	b.Run("Handle", func(b *testing.B) { benchHandle(b, wh, req, 0) })

	// The same validator behind controller-runtime's generic webhook
	// (admission.WithValidator), whose decoder reads the object twice.
	b.Run("HandleGenericDecoder", func(b *testing.B) {
		benchHandle(b, admission.WithValidator(scheme, admission.Validator[*v1alpha1.NetworkAllowlist](validator)), req, 0)
	})

	// The same with lookups that deep-copy each Service out of the cache
	// (lookup.New, as the controller reads).
	copying := admission.WithValidator(scheme, admission.Validator[*v1alpha1.NetworkAllowlist](&webhook.AllowlistValidator{Cached: lookup.New(informers), Live: lookup.New(c)}))
	b.Run("HandleGenericDecoderDeepCopy", func(b *testing.B) { benchHandle(b, copying, req, 0) })

	// The baseline: controller-runtime's generic validating webhook with a
	// validator that admits everything, on the same request (decoding
	// and answering only).
	b.Run("NoopHandle", func(b *testing.B) { benchHandle(b, admission.WithValidator(scheme, noopValidator{}), req, 0) })

	body, err := workload.TenRuleAllowlistReview("frontend", "backends")
	if err != nil {
		b.Fatal(err)
	}
	// As moat serves it, and the no-op baseline through the same HTTP
	// endpoint.
	b.Run("ServeHTTP", func(b *testing.B) { benchServeHTTP(b, wh, body) })
	b.Run("NoopServeHTTP", func(b *testing.B) { benchServeHTTP(b, admission.WithValidator(scheme, noopValidator{}), body) })
}

// benchServeHTTP posts the AdmissionReview body to wh's HTTP endpoint b.N
// times and fails unless every answer is allowed.
func benchServeHTTP(b *testing.B, wh http.Handler, body []byte) {
	b.ReportAllocs()
	cpu := processCPU(b)
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, webhook.ValidateNetworkAllowlistPath, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		wh.ServeHTTP(w, r)
		var review admissionv1.AdmissionReview
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &review); err != nil || review.Response == nil || !review.Response.Allowed {
			b.Fatalf("answer %s (%v), want allowed", w.Body, err)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// noopValidator admits every NetworkAllowlist without looking at it.
type noopValidator struct{}

func (noopValidator) ValidateCreate(context.Context, *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return nil, nil
}

func (noopValidator) ValidateUpdate(context.Context, *v1alpha1.NetworkAllowlist, *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return nil, nil
}

func (noopValidator) ValidateDelete(context.Context, *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return nil, nil
}

// userNetworkPolicy is a NetworkPolicy a tenant writes: ingress from a
// namespace and an ipBlock with an except, egress to an ipBlock.
func userNetworkPolicy() *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "frontend", Name: "web"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: "gateway"}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(8080))}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/16", Except: []string{"10.1.2.0/24"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(443))}},
			}},
		},
	}
}

var networkPoliciesResource = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}

// BenchmarkNetworkPolicyCreate measures the NetworkPolicy validating webhook
// on a tenant's policy with ipBlocks (CIDR, except and port checks).
func BenchmarkNetworkPolicyCreate(b *testing.B) {
	wh := admission.WithValidator(benchScheme(), &webhook.NetworkPolicyValidator{Config: validation.Config{}, Trust: webhook.Trust{ServiceAccount: "system:serviceaccount:moat-system:moat"}})
	benchHandle(b, wh, request(b, admissionv1.Create, networkPoliciesResource, userNetworkPolicy(), nil, tenant), 0)
}

// BenchmarkNetworkPolicyUpdateByMoat measures the tamper guard admitting
// moat's own update of a policy it manages.
func BenchmarkNetworkPolicyUpdateByMoat(b *testing.B) {
	sa := "system:serviceaccount:moat-system:moat"
	wh := admission.WithValidator(benchScheme(), &webhook.NetworkPolicyValidator{Trust: webhook.Trust{ServiceAccount: sa}})
	old := userNetworkPolicy()
	old.Labels = policy.ManagedLabels()
	updated := old.DeepCopy()
	updated.Spec.Ingress[0].Ports[0].Port = ptr.To(intstr.FromInt32(9090))
	benchHandle(b, wh, request(b, admissionv1.Update, networkPoliciesResource, updated, old, authenticationv1.UserInfo{Username: sa}), 0)
}

func namespace(labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: "frontend", Labels: labels},
	}
}

var namespacesResource = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// BenchmarkNamespaceValidateIsolate measures the Namespace validating
// webhook on an update that sets moat.dev/isolated: "true".
func BenchmarkNamespaceValidateIsolate(b *testing.B) {
	wh := admission.WithValidator(benchScheme(), &webhook.NamespaceValidator{})
	benchHandle(b, wh, request(b, admissionv1.Update, namespacesResource,
		namespace(map[string]string{v1alpha1.IsolationLabel: "true"}), namespace(nil), tenant), 0)
}

// BenchmarkNamespaceMutateUnrelated measures the mutating Namespace webhook
// on the common case: an update that does not turn isolation on (it decodes
// both objects and writes nothing).
func BenchmarkNamespaceMutateUnrelated(b *testing.B) {
	mutator := &webhook.NamespaceMutator{Converger: refusingConverger{b}, Decoder: admission.NewDecoder(benchScheme())}
	benchHandle(b, &admission.Webhook{Handler: mutator}, request(b, admissionv1.Update, namespacesResource,
		namespace(map[string]string{"team": "a", v1alpha1.IsolationLabel: "true"}), namespace(map[string]string{v1alpha1.IsolationLabel: "true"}), tenant), 0)
}

// refusingConverger fails the benchmark if the mutator tries to write.
type refusingConverger struct{ b *testing.B }

func (r refusingConverger) ApplyNamespace(context.Context, *corev1.Namespace) error {
	r.b.Fatal("the mutator wrote policies for an update that does not turn isolation on")
	return nil
}
