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
