package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/test/workload"
	"moat.dev/moat/validation"
	"moat.dev/moat/webhook"
)

// countingConverger stands in for the isolation controller behind the
// mutating webhook: it counts the namespaces it is asked to apply.
type countingConverger struct{ calls atomic.Int64 }

func (c *countingConverger) ApplyNamespace(context.Context, *corev1.Namespace) error {
	c.calls.Add(1)
	return nil
}

// fuzzEndpoints returns moat's four admission endpoints as the webhook
// server serves them, with panics not recovered so that the fuzzer sees them.
func fuzzEndpoints() map[string]*admission.Webhook {
	scheme := benchScheme()
	trust := webhook.Trust{ServiceAccount: "system:serviceaccount:moat-system:moat", AdminGroups: []string{"system:masters"}}
	allowlists, err := webhook.NewValidatingWebhook(scheme, admission.Validator[*v1alpha1.NetworkAllowlist](&webhook.AllowlistValidator{Config: validation.Config{}}))
	if err != nil {
		panic(err)
	}
	return map[string]*admission.Webhook{
		webhook.ValidateNetworkAllowlistPath: allowlists.WithRecoverPanic(false),
		webhook.ValidateNetworkPolicyPath:    admission.WithValidator(scheme, &webhook.NetworkPolicyValidator{Trust: trust}).WithRecoverPanic(false),
		webhook.ValidateNamespacePath:        admission.WithValidator(scheme, &webhook.NamespaceValidator{}).WithRecoverPanic(false),
		webhook.MutateNamespacePath: (&admission.Webhook{Handler: &webhook.NamespaceMutator{
			Converger: &countingConverger{}, Decoder: admission.NewDecoder(scheme),
		}}).WithRecoverPanic(false),
	}
}

// fuzzSeeds are well-formed reviews for every endpoint (allowed and denied)
// and the malformed bodies of the robustness tests.
func fuzzSeeds(t testing.TB) [][]byte {
	review := func(op admissionv1.Operation, gvr schema.GroupVersionResource, obj, old runtime.Object, user authenticationv1.UserInfo) []byte {
		r, err := workload.Review("7d1c9a4e-0000-4000-8000-000000000001", op, gvr, obj, old, user)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	allowlist, err := workload.TenRuleAllowlistReview("frontend", "backends")
	if err != nil {
		t.Fatal(err)
	}
	managed := userNetworkPolicy()
	managed.Labels = policy.ManagedLabels()
	badLabel := namespace(map[string]string{v1alpha1.IsolationLabel: "yes"})
	return [][]byte{
		allowlist,
		review(admissionv1.Create, networkPoliciesResource, userNetworkPolicy(), nil, tenant),
		review(admissionv1.Delete, networkPoliciesResource, nil, managed, tenant),
		review(admissionv1.Update, namespacesResource, namespace(map[string]string{v1alpha1.IsolationLabel: "true"}), namespace(nil), tenant),
		review(admissionv1.Create, namespacesResource, badLabel, nil, tenant),
		[]byte(``),
		[]byte(`{`),
		[]byte(`null`),
		[]byte(`not json at all`),
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{"kind":"Namespace"}}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"UPDATE","object":[],"oldObject":7}}`),
	}
}

// serveOnce posts body to wh and checks the answer is a well-formed
// AdmissionReview response: HTTP 200, a response object, and a 4xx status
// whenever the request is not allowed.
func serveOnce(t *testing.T, path string, wh *admission.Webhook, body []byte) *admissionv1.AdmissionResponse {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	wh.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("%s: HTTP %d for %q", path, w.Code, body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("%s: answer %q is not an AdmissionReview response (%v) for %q", path, w.Body, err, body)
	}
	if !out.Response.Allowed {
		if out.Response.Result == nil || out.Response.Result.Code < 400 || out.Response.Result.Code >= 500 {
			t.Fatalf("%s: denial without a 4xx status: %s for %q", path, w.Body, body)
		}
	}
	var in admissionv1.AdmissionReview
	if json.Unmarshal(body, &in) == nil && in.Request != nil && out.Response.UID != in.Request.UID {
		t.Fatalf("%s: answer uid %q, request uid %q", path, out.Response.UID, in.Request.UID)
	}
	return out.Response
}

// FuzzAdmissionReview feeds arbitrary request bodies to every admission
// endpoint of moat through controller-runtime's HTTP handler, in process:
// none may panic, and every answer must be a well-formed AdmissionReview.
func FuzzAdmissionReview(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	endpoints := fuzzEndpoints()
	f.Fuzz(func(t *testing.T, body []byte) {
		for path, wh := range endpoints {
			serveOnce(t, path, wh, body)
		}
	})
}

// TestAdmissionSeedsAnswers pins what the fuzz seeds get, so that the fuzz
// target's assertions are known to see both allowed and denied answers.
func TestAdmissionSeedsAnswers(t *testing.T) {
	endpoints := fuzzEndpoints()
	seeds := fuzzSeeds(t)
	type want struct {
		path    string
		allowed bool
		code    int32
	}
	for i, w := range []want{
		{webhook.ValidateNetworkAllowlistPath, true, 200},
		{webhook.ValidateNetworkPolicyPath, true, 200},
		{webhook.ValidateNetworkPolicyPath, false, http.StatusForbidden},
		{webhook.ValidateNamespacePath, true, 200},
		{webhook.ValidateNamespacePath, false, http.StatusUnprocessableEntity},
		{webhook.ValidateNamespacePath, false, http.StatusBadRequest},
		{webhook.MutateNamespacePath, false, http.StatusBadRequest},
		{webhook.ValidateNetworkPolicyPath, false, http.StatusBadRequest},
	} {
		resp := serveOnce(t, w.path, endpoints[w.path], seeds[i])
		code := int32(200)
		if resp.Result != nil && resp.Result.Code != 0 {
			code = resp.Result.Code
		}
		if resp.Allowed != w.allowed || code != w.code {
			t.Errorf("seed %d on %s: allowed %v code %d, want %v %d", i, w.path, resp.Allowed, code, w.allowed, w.code)
		}
	}
}
