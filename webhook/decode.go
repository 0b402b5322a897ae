package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
)

// onceDecoder decodes the objects of admission requests into a T exactly as
// controller-runtime's admission.Decoder does, reading the JSON once in the
// common case instead of twice.
//
// admission.Decoder (runtime.DecodeInto with the scheme's universal
// deserializer, not strict) first reads the whole object with encoding/json
// to find its apiVersion and kind (case-insensitively), then reads it again
// with sigs.k8s.io/json (case-sensitively, unknown and duplicate fields
// ignored, the last duplicate wins) into the typed object. onceDecoder does
// the second read alone, noting unknown fields, and takes apiVersion and
// kind from the typed object. That is the same answer whenever the object is
// a JSON object without unknown fields: then no other key can match
// apiVersion or kind case-insensitively, so both reads see the same values.
// Anything else (an unknown field, a decoding error, a kind other than T's,
// no content) is decoded again by admission.Decoder into a fresh object, so
// every answer, errors included, is the generic decoder's. The API server
// sends objects it has decoded and encoded itself, which always take the
// single read.
type onceDecoder[T runtime.Object] struct {
	gvk      schema.GroupVersionKind
	new      func() T
	fallback admission.Decoder
}

func newOnceDecoder[T runtime.Object](scheme *runtime.Scheme) (*onceDecoder[T], error) {
	newT := func() T {
		var zero T
		return reflect.New(reflect.TypeOf(zero).Elem()).Interface().(T)
	}
	gvk, err := apiutil.GVKForObject(newT(), scheme)
	if err != nil {
		return nil, err
	}
	return &onceDecoder[T]{gvk: gvk, new: newT, fallback: admission.NewDecoder(scheme)}, nil
}

// decode returns a new T holding raw, or the error admission.Decoder's
// DecodeRaw returns for raw.
func (d *onceDecoder[T]) decode(raw runtime.RawExtension) (T, error) {
	if obj := d.new(); utilyaml.IsJSONBuffer(raw.Raw) {
		strictErrs, err := kjson.UnmarshalStrict(raw.Raw, obj, kjson.DisallowUnknownFields)
		if err == nil && len(strictErrs) == 0 && d.hasKind(obj) {
			return obj, nil
		}
	}
	obj := d.new()
	if err := d.fallback.DecodeRaw(raw, obj); err != nil {
		var zero T
		return zero, err
	}
	return obj, nil
}

// hasKind reports whether the apiVersion and kind obj was decoded with,
// completed with T's as the JSON serializer completes them, name T.
func (d *onceDecoder[T]) hasKind(obj T) bool {
	typeMeta, ok := obj.GetObjectKind().(*metav1.TypeMeta)
	if !ok {
		return false
	}
	// As k8s.io/apimachinery's json.SimpleMetaFactory.Interpret.
	gv, err := schema.ParseGroupVersion(typeMeta.APIVersion)
	if err != nil {
		return false
	}
	actual := gv.WithKind(typeMeta.Kind)
	// The defaulting of k8s.io/apimachinery's json.gvkWithDefaults.
	if actual.Kind == "" {
		actual.Kind = d.gvk.Kind
	}
	if actual.Version == "" && actual.Group == "" {
		actual.Group, actual.Version = d.gvk.Group, d.gvk.Version
	}
	if actual.Version == "" && actual.Group == d.gvk.Group {
		actual.Version = d.gvk.Version
	}
	return actual == d.gvk
}

// validatorHandler is controller-runtime's validating handler
// (admission.WithValidator) with onceDecoder in place of admission.Decoder:
// the same operations, the same answers (errors with an API status are
// returned as that status, other errors as a denial, warnings passed
// through), the admission.Request in the context.
type validatorHandler[T runtime.Object] struct {
	validator admission.Validator[T]
	decoder   *onceDecoder[T]
}

// NewValidatingWebhook returns the webhook of validator, which decodes each
// object once (see onceDecoder) and otherwise behaves as
// admission.WithValidator(scheme, validator): same answers, same errors.
func NewValidatingWebhook[T runtime.Object](scheme *runtime.Scheme, validator admission.Validator[T]) (*admission.Webhook, error) {
	d, err := newOnceDecoder[T](scheme)
	if err != nil {
		return nil, err
	}
	return &admission.Webhook{Handler: &validatorHandler[T]{validator: validator, decoder: d}}, nil
}

// Handle answers req as controller-runtime's validatorForType.Handle does.
func (h *validatorHandler[T]) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx = admission.NewContextWithRequest(ctx, req)
	var (
		warnings admission.Warnings
		err      error
	)
	switch req.Operation {
	case admissionv1.Connect:
		// As controller-runtime: CONNECT is not validated.
	case admissionv1.Create:
		obj, derr := h.decoder.decode(req.Object)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		warnings, err = h.validator.ValidateCreate(ctx, obj)
	case admissionv1.Update:
		obj, derr := h.decoder.decode(req.Object)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		oldObj, derr := h.decoder.decode(req.OldObject)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		warnings, err = h.validator.ValidateUpdate(ctx, oldObj, obj)
	case admissionv1.Delete:
		// The object being deleted is in OldObject.
		obj, derr := h.decoder.decode(req.OldObject)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		warnings, err = h.validator.ValidateDelete(ctx, obj)
	default:
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("unknown operation %q", req.Operation))
	}
	if err != nil {
		var apiStatus apierrors.APIStatus
		if errors.As(err, &apiStatus) {
			status := apiStatus.Status()
			return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}.WithWarnings(warnings...)
		}
		return admission.Denied(err.Error()).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}
