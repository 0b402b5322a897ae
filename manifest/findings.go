package manifest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/validation"
)

// Severity says whether a finding rejects the input.
type Severity string

const (
	// SeverityError is a finding that the webhook would reject (or input that
	// cannot be read at all).
	SeverityError Severity = "error"
	// SeverityWarning is a finding that the webhook admits with a warning.
	SeverityWarning Severity = "warning"
)

// Finding is one problem found in the manifests, located by file and line.
// Kind, Namespace and Name are empty when the document could not be read far
// enough to know them; Namespace is empty for cluster-scoped kinds; Field is
// empty when the whole object (or document) is concerned.
type Finding struct {
	File      string   `json:"file"`
	Line      int      `json:"line"`
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Field     string   `json:"field"`
	Message   string   `json:"message"`
	Severity  Severity `json:"severity"`
}

// String formats a finding as one line:
//
//	file:line: Kind/namespace/name: field.path: message
//	file:line: warning: Kind/namespace/name: field.path: message
//
// Cluster-scoped objects print as Kind/name; the object and the field are
// left out when unknown; the line is left out when it is 0 (an object that
// comes from the live cluster rather than a file).
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(f.File)
	if f.Line > 0 {
		b.WriteString(":" + strconv.Itoa(f.Line))
	}
	b.WriteString(": ")
	if f.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if f.Kind != "" {
		b.WriteString(f.Kind)
		if f.Namespace != "" {
			b.WriteString("/" + f.Namespace)
		}
		if f.Name != "" {
			b.WriteString("/" + f.Name)
		}
		b.WriteString(": ")
	}
	if f.Field != "" {
		b.WriteString(f.Field + ": ")
	}
	b.WriteString(f.Message)
	return b.String()
}

// compareFindings orders findings by file, line, kind, namespace, name,
// field, severity and message, so that output never depends on the order of
// documents in the input.
func compareFindings(a, b Finding) int {
	return cmp.Or(
		cmp.Compare(a.File, b.File),
		cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Field, b.Field),
		cmp.Compare(a.Severity, b.Severity),
		cmp.Compare(a.Message, b.Message),
	)
}

// SortFindings sorts findings into their canonical order (see compareFindings).
func SortFindings(fs []Finding) {
	slices.SortFunc(fs, compareFindings)
}

// Count returns the number of errors and warnings.
func Count(fs []Finding) (errs, warnings int) {
	for _, f := range fs {
		if f.Severity == SeverityError {
			errs++
		} else {
			warnings++
		}
	}
	return errs, warnings
}

// WriteText writes one finding per line.
func WriteText(w io.Writer, fs []Finding) error {
	for _, f := range fs {
		if _, err := fmt.Fprintln(w, f.String()); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes the findings as one indented JSON array ([] when there
// are none).
func WriteJSON(w io.Writer, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(fs)
}

// Check reads paths (see ReadPaths) and validates what they hold (see
// CheckSource).
func Check(paths []string, stdin io.Reader, live Cluster, cfg validation.Config) (*Index, []Finding, error) {
	return CheckSource(Source{Filenames: paths, Recursive: true}, stdin, live, cfg)
}

// CheckSource reads what `kubectl apply` reads for src (see Source.Read) and
// validates it (see Validate), without keeping NetworkPolicies in memory:
// each is validated as soon as it is read. Without src.Namespace, objects
// whose findings depend on the namespace kubectl apply gives them get a
// warning. The error is an I/O error.
func CheckSource(src Source, stdin io.Reader, live Cluster, cfg validation.Config) (*Index, []Finding, error) {
	x := NewIndex(live)
	x.warnNamespaceUnset = src.Namespace == ""
	var out []Finding
	// The tenant rule needs the namespace and its allowlists, known only
	// once everything is read: keep the few policies it could refuse.
	var tenantCandidates []Object
	x.onNetworkPolicy = func(o *Object) {
		out = validateObject(out, o, x, cfg)
		if cfg.TenantNetworkPolicies.Effective() != validation.TenantPoliciesOff && tenantCandidate(o) {
			tenantCandidates = append(tenantCandidates, *o)
		}
	}
	if err := src.Read(stdin, x); err != nil {
		return nil, nil, err
	}
	x.Build()
	out = append(out, Validate(x, cfg)...)
	tenant := newTenantRule(x, cfg)
	for i := range tenantCandidates {
		out = x.checkObject(out, &tenantCandidates[i], cfg, false, tenant)
	}
	SortFindings(out)
	return x, out, nil
}

// Validate runs moat's validation on every NetworkAllowlist, NetworkPolicy
// and Namespace of the index, looking Services, Namespaces and allowlists up
// in the index, and returns the findings sorted. Documents that could not be
// read, fields that the kind does not have and duplicate definitions are
// findings too.
func Validate(x *Index, cfg validation.Config) []Finding {
	var out []Finding
	for _, e := range x.Errors {
		out = append(out, Finding{
			File: e.File, Line: e.Line,
			Kind: e.Kind, Namespace: e.Namespace, Name: e.Name,
			Message: e.Message, Severity: SeverityError,
		})
	}
	for _, d := range x.Duplicates() {
		f := Finding{File: d.File, Line: d.Line, Kind: d.Kind, Namespace: d.Namespace, Name: d.Name, Severity: SeverityWarning,
			Message: fmt.Sprintf("defined again: the previous definition is at %s; kubectl apply keeps only the last one, remove one of them", d.Previous)}
		if d.Kind == "Namespace" {
			f.Namespace = ""
		}
		out = append(out, f)
	}
	tenant := newTenantRule(x, cfg)
	for i := range x.Objects {
		out = x.checkObject(out, &x.Objects[i], cfg, true, tenant)
	}
	SortFindings(out)
	return out
}

// validateObject appends the findings about one object.
func validateObject(out []Finding, o *Object, cluster validation.Cluster, cfg validation.Config) []Finding {
	at := func(sev Severity, fld, msg string) Finding {
		f := Finding{File: o.File, Line: o.Line, Kind: o.Kind, Name: o.Object.GetName(), Field: fld, Message: msg, Severity: sev}
		if o.Kind != "Namespace" {
			f.Namespace = o.Object.GetNamespace()
		}
		return f
	}
	for _, u := range o.Unknown {
		out = append(out, at(SeverityError, u, "unknown field: this kind has no such field (check its spelling and indentation); the API server rejects it"))
	}
	var (
		errs     field.ErrorList
		warnings []validation.Warning
	)
	switch obj := o.Object.(type) {
	case *v1alpha1.NetworkAllowlist:
		errs, warnings = validation.ValidateNetworkAllowlist(obj, cfg, cluster)
	case *networkingv1.NetworkPolicy:
		errs, warnings = validation.ValidateNetworkPolicy(obj, cfg)
		warnings = append(warnings, validation.ValidateNetworkPolicyName(obj)...)
	case *corev1.Namespace:
		errs = append(validation.ValidateNamespace(obj), validation.ValidateNamespaceProtection(obj, cfg)...)
	}
	return appendFindings(out, at, errs, warnings)
}

// appendFindings appends errs and warnings, placed by at.
func appendFindings(out []Finding, at func(sev Severity, fld, msg string) Finding, errs field.ErrorList, warnings []validation.Warning) []Finding {
	for _, e := range errs {
		out = append(out, at(SeverityError, e.Field, e.ErrorBody()))
	}
	for _, w := range warnings {
		out = append(out, at(SeverityWarning, w.Field, w.Detail))
	}
	return out
}
