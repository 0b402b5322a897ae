package webhook

import (
	"encoding/json"
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/test/workload"
)

// refusingDecoder fails every decode: the fast path must not need it.
type refusingDecoder struct{}

func (refusingDecoder) Decode(admission.Request, runtime.Object) error {
	return errors.New("fell back to admission.Decoder")
}

func (refusingDecoder) DecodeRaw(runtime.RawExtension, runtime.Object) error {
	return errors.New("fell back to admission.Decoder")
}

// TestOnceDecoderReadsAPIServerObjectsOnce: an allowlist as the API server
// sends it (every field known, apiVersion and kind set) is decoded without
// the generic decoder; the answers themselves are compared with it in
// decode_test.go.
func TestOnceDecoderReadsAPIServerObjectsOnce(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	d, err := newOnceDecoder[*v1alpha1.NetworkAllowlist](scheme)
	if err != nil {
		t.Fatal(err)
	}
	d.fallback = refusingDecoder{}
	al := workload.TenRuleAllowlist("frontend", "bench", "backends")
	al.UID, al.ResourceVersion, al.Generation = "6f1c2d3e-0000-4000-8000-000000000001", "42", 1
	al.Labels = map[string]string{"team": "a"}
	raw, err := json.Marshal(al)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.decode(runtime.RawExtension{Raw: raw})
	if err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	if got.Name != "bench" || got.Labels["team"] != "a" || len(got.Spec.Egress) != workload.Rules || got.Kind != "NetworkAllowlist" {
		t.Errorf("decoded %+v", got)
	}
	// Anything unusual goes to the generic decoder.
	for _, raw := range []string{`{"kind":"NetworkAllowlist","apiVersion":"moat.dev/v1alpha1","Kind":"x"}`, `{"kind":"Service","apiVersion":"v1"}`, ``, `null`} {
		if _, err := d.decode(runtime.RawExtension{Raw: []byte(raw)}); err == nil || err.Error() != "fell back to admission.Decoder" {
			t.Errorf("decoding %q: %v, want the generic decoder's answer", raw, err)
		}
	}
}
