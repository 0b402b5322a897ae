package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/test/workload"
	"moat.dev/moat/validation"
	"moat.dev/moat/webhook"
)

// recordingValidator records the objects it is given and answers with a
// warning and, for objects named "deny" and "status", an error (a plain one
// and an API status).
type recordingValidator struct {
	got []*v1alpha1.NetworkAllowlist
}

func (r *recordingValidator) answer(objs ...*v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	r.got = append(r.got, objs...)
	switch objs[0].Name {
	case "deny":
		return admission.Warnings{"w"}, errors.New("denied by name")
	case "status":
		return admission.Warnings{"w"}, apierrors.NewInvalid(v1alpha1.GroupVersion.WithKind("NetworkAllowlist").GroupKind(), "status",
			field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), "status", "no")})
	}
	return admission.Warnings{"w"}, nil
}

func (r *recordingValidator) ValidateCreate(_ context.Context, obj *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return r.answer(obj)
}

func (r *recordingValidator) ValidateUpdate(_ context.Context, oldObj, newObj *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return r.answer(newObj, oldObj)
}

func (r *recordingValidator) ValidateDelete(_ context.Context, obj *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return r.answer(obj)
}

var operations = []admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect, "PATCH"}

// decodeSeeds are objects as the API server sends them and variants that
// the generic decoder reads differently or refuses: missing or partial
// apiVersion and kind, another kind, keys that match apiVersion or kind
// only case-insensitively (encoding/json, which the generic decoder finds
// the kind with, is case-insensitive; sigs.k8s.io/json is not), duplicate
// and unknown fields, type errors, and what is not a JSON object.
func decodeSeeds(t testing.TB) [][]byte {
	canonical, err := json.Marshal(workload.TenRuleAllowlist("frontend", "bench", "backends"))
	if err != nil {
		t.Fatal(err)
	}
	c := string(canonical)
	const head = `{"kind":"NetworkAllowlist","apiVersion":"moat.dev/v1alpha1",`
	if !strings.HasPrefix(c, head) {
		t.Fatalf("canonical allowlist %s does not start with %s", c, head)
	}
	rest := strings.TrimPrefix(c, head)
	seeds := []string{
		c,
		" \n\t" + c,
		"{" + rest,
		`{"apiVersion":"moat.dev/v1alpha1",` + rest,
		`{"kind":"NetworkAllowlist",` + rest,
		`{"apiVersion":"v1alpha1","kind":"NetworkAllowlist",` + rest,
		`{"apiVersion":"moat.dev/v1","kind":"NetworkAllowlist",` + rest,
		`{"apiVersion":"v1","kind":"Service",` + rest,
		`{"apiVersion":"moat.dev/v1alpha1","kind":"NetworkAllowlistList",` + rest,
		`{"apiVersion":"a/b/c","kind":"NetworkAllowlist",` + rest,
		`{"apiVersion":5,"kind":"NetworkAllowlist",` + rest,
		head + `"Kind":"Service",` + rest,
		head + `"KIND":"NetworkAllowlist",` + rest,
		head + `"\u212Aind":"Service",` + rest,
		head + `"APIVERSION":"v1",` + rest,
		head + `"kind":"Service",` + rest,
		`{"kind":"Service",` + strings.TrimPrefix(head, "{") + rest,
		head + `"kind":null,` + rest,
		head + `"unknown":1,` + rest,
		head + `"metadata":{"name":"first"},` + rest,
		head + `"metadata":{"name":"deny"},"spec":{}}`,
		head + `"metadata":{"name":"status"},"spec":{}}`,
		head + `"metadata":{"name":"x"},"spec":{"egress":[{"to":[{"service":{"name":"a","extra":true}}]}]}}`,
		head + `"metadata":{"name":"x"},"spec":{"egress":"no"}}`,
		head + `"metadata":{"name":"x"},"spec":{"egress":[{"ports":[{"port":99999999999999999999}]}]}}`,
		head + `"metadata":{"name":"x","labels":{"a":1}}}`,
		head + `"metadata":{"name":"x"}}  `,
		head + `"metadata":{"name":"x"}} {}`,
		head + `"metadata":{"name":"x"}`,
		// fieldsV1 holds raw JSON: nesting at and beyond the decoders'
		// depth limit (10,000).
		head + `"metadata":{"name":"x","managedFields":[{"fieldsV1":` + strings.Repeat(`{"a":`, 9990) + `1` + strings.Repeat(`}`, 9990) + `}]}}`,
		head + `"metadata":{"name":"x","managedFields":[{"fieldsV1":` + strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat(`}`, 10001) + `}]}}`,
		`{}`,
		``,
		`null`,
		`[]`,
		`"NetworkAllowlist"`,
		`7`,
		`apiVersion: moat.dev/v1alpha1`,
	}
	out := make([][]byte, len(seeds))
	for i, s := range seeds {
		out[i] = []byte(s)
	}
	return out
}

// decodeWebhooks are the webhooks answersAlike compares, built once (a
// codec factory takes longer to build than a fuzz iteration): the recording
// validator and moat's allowlist validator (no lookups) behind
// webhook.NewValidatingWebhook and behind controller-runtime's
// admission.WithValidator. answersAlike is not safe for concurrent use.
var decodeWebhooks = sync.OnceValue(func() (w struct {
	once, generic                   *recordingValidator
	onceRec, genericRec, onceAL, al *admission.Webhook
}) {
	scheme := benchScheme()
	w.once, w.generic = &recordingValidator{}, &recordingValidator{}
	allowlists := &webhook.AllowlistValidator{Config: validation.Config{}}
	var err error
	if w.onceRec, err = webhook.NewValidatingWebhook(scheme, admission.Validator[*v1alpha1.NetworkAllowlist](w.once)); err != nil {
		panic(err)
	}
	if w.onceAL, err = webhook.NewValidatingWebhook(scheme, admission.Validator[*v1alpha1.NetworkAllowlist](allowlists)); err != nil {
		panic(err)
	}
	w.genericRec = admission.WithValidator(scheme, admission.Validator[*v1alpha1.NetworkAllowlist](w.generic))
	w.al = admission.WithValidator(scheme, admission.Validator[*v1alpha1.NetworkAllowlist](allowlists))
	return w
})

// answersAlike checks that webhook.NewValidatingWebhook and
// controller-runtime's admission.WithValidator give the same response to a
// request with object obj and old object old under op, and hand the
// validator the same objects; and the same with moat's allowlist validator.
func answersAlike(t *testing.T, op admissionv1.Operation, obj, old []byte) {
	t.Helper()
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "u", Operation: op, Name: "bench", Namespace: "frontend",
		Kind:      metav1.GroupVersionKind{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Kind: "NetworkAllowlist"},
		Resource:  metav1.GroupVersionResource(workload.AllowlistsResource),
		UserInfo:  tenant,
		Object:    runtime.RawExtension{Raw: obj},
		OldObject: runtime.RawExtension{Raw: old},
	}}
	w := decodeWebhooks()
	w.once.got, w.generic.got = nil, nil
	ctx := context.Background()
	if got, want := w.onceRec.Handle(ctx, req), w.genericRec.Handle(ctx, req); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s of %q (old %q):\nanswer  %+v\ngeneric %+v", op, obj, old, got.AdmissionResponse, want.AdmissionResponse)
	}
	if !reflect.DeepEqual(w.once.got, w.generic.got) {
		t.Fatalf("%s of %q (old %q): the validator got\n%#v\nfrom the generic decoder\n%#v", op, obj, old, w.once.got, w.generic.got)
	}
	if got, want := w.onceAL.Handle(ctx, req), w.al.Handle(ctx, req); !reflect.DeepEqual(got, want) {
		t.Fatalf("allowlist validator, %s of %q (old %q):\nanswer  %+v\ngeneric %+v", op, obj, old, got.AdmissionResponse, want.AdmissionResponse)
	}
}

// TestValidatingWebhookAnswersAsGeneric runs every seed through every
// operation, as new and as old object, against the canonical allowlist.
func TestValidatingWebhookAnswersAsGeneric(t *testing.T) {
	seeds := decodeSeeds(t)
	for _, op := range operations {
		for _, seed := range seeds {
			answersAlike(t, op, seed, seeds[0])
			answersAlike(t, op, seeds[0], seed)
		}
	}
}

// FuzzValidatingWebhookDecode is the differential fuzz target of
// webhook.NewValidatingWebhook's decoding against controller-runtime's
// admission.Decoder: on any object and old object, the same answer and the
// same decoded objects.
func FuzzValidatingWebhookDecode(f *testing.F) {
	seeds := decodeSeeds(f)
	for i, seed := range seeds {
		f.Add(uint8(i), seed, seeds[0])
	}
	f.Fuzz(func(t *testing.T, op uint8, obj, old []byte) {
		answersAlike(t, operations[int(op)%len(operations)], obj, old)
	})
}
