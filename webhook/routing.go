package webhook

import (
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultValidatingConfiguration is the name of moat's
// ValidatingWebhookConfiguration in manifests/webhook.
const DefaultValidatingConfiguration = "moat-validating-webhook-configuration"

// Names of the webhooks of manifests/webhook whose routing depends on moat
// serve's flags: the API server only calls moat for what their object
// selectors and match conditions let through, so a flag that disagrees with
// them silently turns a protection off.
const (
	ProjectLabelWebhook = "project-label.namespaces.moat.dev"
	ProtectedWebhook    = "protected-namespaces.moat.dev"
)

// CheckRouting returns an error, saying what to change, when the webhook
// configuration would not route to moat what its flags need to see:
//   - with a project label, the project-label webhook must select namespaces
//     carrying that key (objectSelector key Exists) and its match conditions
//     must compare that key; otherwise anyone who may update a namespace can
//     move it into another project's group unchecked;
//   - every protected namespace must be named by the protected-namespaces
//     webhook's match conditions; otherwise isolating it is not refused.
func CheckRouting(config *admissionregistrationv1.ValidatingWebhookConfiguration, projectLabel string, protected []string) error {
	var problems []string
	find := func(name string) *admissionregistrationv1.ValidatingWebhook {
		i := slices.IndexFunc(config.Webhooks, func(w admissionregistrationv1.ValidatingWebhook) bool { return w.Name == name })
		if i < 0 {
			return nil
		}
		return &config.Webhooks[i]
	}
	if projectLabel != "" {
		w := find(ProjectLabelWebhook)
		switch {
		case w == nil:
			problems = append(problems, fmt.Sprintf("it has no webhook %s, so changes of the project label %s never reach moat: apply manifests/webhook", ProjectLabelWebhook, projectLabel))
		case !selectsKey(w.ObjectSelector, projectLabel) || !conditionsName(w.MatchConditions, projectLabel):
			problems = append(problems, fmt.Sprintf("its webhook %s is routed on another label than --project-label=%s, so changes of that label never reach moat: "+
				"write %s in its objectSelector and matchConditions (docs/operations.md, \"Projects that span namespaces\", has a kustomize patch)",
				ProjectLabelWebhook, projectLabel, projectLabel))
		}
	}
	if len(protected) > 0 {
		w := find(ProtectedWebhook)
		var missing []string
		for _, ns := range protected {
			if w == nil || !conditionsName(w.MatchConditions, ns) {
				missing = append(missing, ns)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("its webhook %s does not name the protected namespaces %s (--protected-namespaces), so isolating them is not refused: "+
				"add them to the list in its matchConditions", ProtectedWebhook, strings.Join(missing, ", ")))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("the ValidatingWebhookConfiguration %s disagrees with moat serve's flags: %s", config.Name, strings.Join(problems, "; "))
}

// selectsKey reports whether the selector requires the key to exist.
func selectsKey(selector *metav1.LabelSelector, key string) bool {
	if selector == nil {
		return false
	}
	return slices.ContainsFunc(selector.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool {
		return r.Key == key && r.Operator == metav1.LabelSelectorOpExists
	})
}

// conditionsName reports whether a match condition names value as a CEL
// string literal.
func conditionsName(conditions []admissionregistrationv1.MatchCondition, value string) bool {
	return slices.ContainsFunc(conditions, func(c admissionregistrationv1.MatchCondition) bool {
		return strings.Contains(c.Expression, "'"+value+"'")
	})
}
