package validation

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Warning is a finding that does not reject the object: it is stored, but it
// will not behave as its author probably expects yet. Like a *field.Error it
// names the field it concerns; the webhook turns it into an admission warning
// and `moat validate` into a finding at that field.
type Warning struct {
	// Field is the path of the field concerned, e.g. spec.ingress[0].from[1].ipBlock.cidr.
	Field string
	// Detail says what will happen and what to do about it.
	Detail string
}

// String formats the warning as "field: detail", the form of an admission warning.
func (w Warning) String() string {
	return w.Field + ": " + w.Detail
}

// Strings formats warnings as admission warnings, in order.
func Strings(warnings []Warning) []string {
	if len(warnings) == 0 {
		return nil
	}
	out := make([]string, len(warnings))
	for i, w := range warnings {
		out[i] = w.String()
	}
	return out
}

func newWarning(fldPath *field.Path, detail string) Warning {
	return Warning{Field: fldPath.String(), Detail: detail}
}

// libraryWarnings adopts warnings of k8s.io/apimachinery's validation helpers
// (GetWarningsForCIDR and friends), which format them as "<fldPath>: detail".
func libraryWarnings(fldPath *field.Path, warnings []string) []Warning {
	out := make([]Warning, 0, len(warnings))
	prefix := fldPath.String() + ": "
	for _, w := range warnings {
		out = append(out, Warning{Field: fldPath.String(), Detail: strings.TrimPrefix(w, prefix)})
	}
	return out
}

// ratchetedDetail is the detail of the warning that replaces an error on a
// value an update keeps from the stored object (see ratchet).
func ratchetedDetail(err *field.Error) string {
	return "kept because it was stored before this check applied (" + err.ErrorBody() +
		"); it may stay, but no new such value is accepted: fix it when you can"
}

// ratchet returns errs unchanged when kept is false. When kept is true (an
// update keeps the value the errors are about from the stored object), it
// returns no errors and one warning per error instead: like Kubernetes'
// validation ratcheting, an update never fails on a value it did not change,
// so an object stored before a rule applied (or while SCTP was on) can still
// be edited, and can shed its offending values.
func ratchet(errs field.ErrorList, kept bool) (field.ErrorList, []Warning) {
	if !kept || len(errs) == 0 {
		return errs, nil
	}
	warnings := make([]Warning, len(errs))
	for i, err := range errs {
		warnings[i] = Warning{Field: err.Field, Detail: ratchetedDetail(err)}
	}
	return nil, warnings
}
