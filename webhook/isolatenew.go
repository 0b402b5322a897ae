package webhook

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
)

// IsolateNewNamespacePath serves the mutating webhook that isolates new
// namespaces by default (moat serve --isolate-new-namespaces). The
// webhook configuration that routes Namespace CREATE requests to it is in
// manifests/isolate-new-namespaces.
const IsolateNewNamespacePath = "/isolate-new-v1-namespace"

// neverIsolated reports whether a new namespace must never be isolated at
// creation: a Kubernetes system namespace, moat's own (systemNamespace), or
// one of the protected namespaces (v1alpha1.IsProtectedNamespace), whatever
// --protected-namespaces leaves out.
func neverIsolated(name, systemNamespace string, protected []string) bool {
	return slices.Contains(v1alpha1.SystemNamespaces, name) || name == systemNamespace ||
		v1alpha1.IsProtectedNamespace(name, protected)
}

// NewNamespaceIsolator labels a Namespace that is being created
// moat.dev/isolated: "true" when its labels match Selector, so that it is
// isolated from the start. It answers with a JSON patch of that one label and
// never denies. It leaves alone:
//   - every request when Selector is nil or empty (the feature is off),
//   - a namespace that does not match, and the protected namespaces; but a
//     namespace that would match without the labels the selector names
//     (a creator who sets moat.dev/not-a-tenant against the selector
//     !moat.dev/not-a-tenant) is isolated all the same unless the requester
//     is trusted: only admins may opt a new namespace out,
//   - a request that sets the label itself, when the requester is trusted
//     (Trust: admin groups and the cluster's own controllers). Anyone else who
//     sets it to something other than "true" gets it overwritten with "true"
//     and a warning that says why.
//
// It writes nothing: a dry-run request gets the same patch and no side
// effects; the isolation controller writes the policies once the namespace
// is stored.
type NewNamespaceIsolator struct {
	// Selector chooses the namespaces to isolate; nil means none.
	Selector labels.Selector
	// SystemNamespace is moat's own namespace, never isolated.
	SystemNamespace string
	// Protected are the protected namespaces (--protected-namespaces; nil:
	// the defaults), never isolated.
	Protected []string
	// Trust says whose explicit moat.dev/isolated value is kept.
	Trust Trust
}

var _ admission.Handler = &NewNamespaceIsolator{}

// Handle implements admission.Handler.
func (h *NewNamespaceIsolator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || h.Selector == nil || h.Selector.Empty() {
		return admission.Allowed("")
	}
	// Decode only what is needed, and keep every other field as sent so
	// that the patch touches the label alone.
	var obj map[string]any
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	metadata, _ := obj["metadata"].(map[string]any)
	if metadata == nil {
		metadata = map[string]any{}
		obj["metadata"] = metadata
	}
	name, _ := metadata["name"].(string)
	if neverIsolated(name, h.SystemNamespace, h.Protected) {
		return admission.Allowed("")
	}
	nsLabels := labels.Set{}
	rawLabels, _ := metadata["labels"].(map[string]any)
	for k, v := range rawLabels {
		if s, ok := v.(string); ok {
			nsLabels[k] = s
		}
	}
	var warnings []string
	if !h.Selector.Matches(nsLabels) {
		// Only the trusted may opt a new namespace out with labels: for
		// anyone else, the labels the selector names count only when
		// they bring the namespace in.
		if h.Trust.Trusted(req.UserInfo) || !matchesWithoutOptOuts(nsLabels, h.Selector) {
			return admission.Allowed("")
		}
		warnings = append(warnings, "moat: namespaces are created isolated unless moat serve's --isolate-new-namespaces ("+h.Selector.String()+
			") leaves them out, and only cluster admins may leave one out with labels; it is created isolated")
	}
	if value, set := nsLabels[v1alpha1.IsolationLabel]; set {
		if value == v1alpha1.IsolationOn || h.Trust.Trusted(req.UserInfo) {
			return admission.Allowed("")
		}
		warnings = append(warnings, "moat: namespaces matching moat serve's --isolate-new-namespaces ("+h.Selector.String()+
			") are created isolated; only cluster admins may create one with "+v1alpha1.IsolationLabel+"="+value+
			", so it is set to \"true\"")
	}
	if rawLabels == nil {
		rawLabels = map[string]any{}
		metadata["labels"] = rawLabels
	}
	rawLabels[v1alpha1.IsolationLabel] = v1alpha1.IsolationOn
	patched, err := json.Marshal(obj)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, patched).WithWarnings(warnings...)
}

// matchesWithoutOptOuts reports whether the selector matches the labels
// once every label that makes one of its requirements fail is taken away:
// whether the namespace would match had its creator not set the labels that
// leave it out (moat.dev/not-a-tenant against !moat.dev/not-a-tenant, env=prod
// against env notin (prod)). Labels that bring it in still count.
func matchesWithoutOptOuts(set labels.Set, selector labels.Selector) bool {
	requirements, selectable := selector.Requirements()
	if !selectable {
		return false
	}
	for _, r := range requirements {
		if r.Matches(set) {
			continue
		}
		without := maps.Clone(set)
		delete(without, r.Key())
		if !r.Matches(without) {
			return false
		}
	}
	return true
}
