package webhook

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"moat.dev/moat/api/v1alpha1"
)

// The webhook configurations in manifests/webhook, checked against the
// promises of DESIGN §6 and against the paths this package serves.

func readManifest(t *testing.T, name string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "manifests", "webhook", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// common are the fields every moat webhook sets.
type common struct {
	name              string
	clientConfig      admissionregistrationv1.WebhookClientConfig
	namespaceSelector *metav1.LabelSelector
	sideEffects       *admissionregistrationv1.SideEffectClass
	failurePolicy     *admissionregistrationv1.FailurePolicyType
	timeoutSeconds    *int32
	reviewVersions    []string
	matchConditions   []admissionregistrationv1.MatchCondition
}

func TestWebhookManifests(t *testing.T) {
	var mutating admissionregistrationv1.MutatingWebhookConfiguration
	var validating admissionregistrationv1.ValidatingWebhookConfiguration
	readManifest(t, "mutating-webhook-configuration.yaml", &mutating)
	readManifest(t, "validating-webhook-configuration.yaml", &validating)
	if mutating.Name != "moat-mutating-webhook-configuration" || validating.Name != "moat-validating-webhook-configuration" {
		t.Errorf("configuration names %q, %q", mutating.Name, validating.Name)
	}

	var hooks []common
	for _, w := range mutating.Webhooks {
		hooks = append(hooks, common{w.Name, w.ClientConfig, w.NamespaceSelector, w.SideEffects, w.FailurePolicy, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchConditions})
		if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.NeverReinvocationPolicy {
			t.Errorf("%s: reinvocationPolicy must be Never (it never patches)", w.Name)
		}
	}
	for _, w := range validating.Webhooks {
		hooks = append(hooks, common{w.Name, w.ClientConfig, w.NamespaceSelector, w.SideEffects, w.FailurePolicy, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchConditions})
	}

	wantPolicy := map[string]admissionregistrationv1.FailurePolicyType{
		"isolate-namespace.moat.dev":            admissionregistrationv1.Ignore,
		"networkallowlists.moat.dev":            admissionregistrationv1.Fail,
		"allowlist-deletes.moat.dev":            admissionregistrationv1.Fail,
		"networkpolicies.moat.dev":              admissionregistrationv1.Ignore,
		"managed-networkpolicies.moat.dev":      admissionregistrationv1.Fail,
		"reserved-networkpolicy-names.moat.dev": admissionregistrationv1.Fail,
		"namespaces.moat.dev":                   admissionregistrationv1.Fail,
		"tenant-networkpolicies.moat.dev":       admissionregistrationv1.Fail,
		"protected-namespaces.moat.dev":         admissionregistrationv1.Fail,
		"project-label.namespaces.moat.dev":     admissionregistrationv1.Fail,
	}
	wantSideEffects := map[string]admissionregistrationv1.SideEffectClass{"isolate-namespace.moat.dev": admissionregistrationv1.SideEffectClassNoneOnDryRun}
	wantPath := map[string]string{
		"isolate-namespace.moat.dev":            MutateNamespacePath,
		"networkallowlists.moat.dev":            ValidateNetworkAllowlistPath,
		"allowlist-deletes.moat.dev":            ValidateNetworkAllowlistPath,
		"networkpolicies.moat.dev":              ValidateNetworkPolicyPath,
		"managed-networkpolicies.moat.dev":      ValidateNetworkPolicyPath,
		"reserved-networkpolicy-names.moat.dev": ValidateNetworkPolicyPath,
		"namespaces.moat.dev":                   ValidateNamespacePath,
		"tenant-networkpolicies.moat.dev":       ValidateNetworkPolicyPath,
		"protected-namespaces.moat.dev":         ValidateNamespacePath,
		"project-label.namespaces.moat.dev":     ValidateNamespacePath,
	}
	// Only isolated namespaces see the tenant NetworkPolicy webhook and
	// the allowlist deletes.
	wantMatchLabels := map[string]map[string]string{
		"tenant-networkpolicies.moat.dev": {"moat.dev/isolated": "true"},
		"allowlist-deletes.moat.dev":      {"moat.dev/isolated": "true"},
	}
	excluded := v1alpha1.DefaultProtectedNamespaces(v1alpha1.DefaultSystemNamespace)

	seen := map[string]bool{}
	for _, h := range hooks {
		seen[h.name] = true
		want, ok := wantPolicy[h.name]
		if !ok {
			t.Errorf("unexpected webhook %s", h.name)
			continue
		}
		if h.failurePolicy == nil || *h.failurePolicy != want {
			t.Errorf("%s: failurePolicy %v, want %s (docs/operations.md explains it)", h.name, h.failurePolicy, want)
		}
		sideEffects := admissionregistrationv1.SideEffectClassNone
		if s, ok := wantSideEffects[h.name]; ok {
			sideEffects = s
		}
		if h.sideEffects == nil || *h.sideEffects != sideEffects {
			t.Errorf("%s: sideEffects %v, want %s", h.name, h.sideEffects, sideEffects)
		}
		if h.timeoutSeconds == nil || *h.timeoutSeconds < 1 || *h.timeoutSeconds > 10 {
			t.Errorf("%s: timeoutSeconds %v, want an explicit value of at most 10", h.name, h.timeoutSeconds)
		}
		if !slices.Equal(h.reviewVersions, []string{"v1"}) {
			t.Errorf("%s: admissionReviewVersions %v, want [v1]", h.name, h.reviewVersions)
		}
		svc := h.clientConfig.Service
		if svc == nil || svc.Name != "moat-webhook-service" || svc.Namespace != "moat-system" || svc.Path == nil || *svc.Path != wantPath[h.name] {
			t.Errorf("%s: clientConfig.service %+v, want moat-system/moat-webhook-service at %s", h.name, svc, wantPath[h.name])
		}
		if h.name == "protected-namespaces.moat.dev" {
			// It must reach the protected namespaces: no namespaceSelector,
			// match conditions naming each of them.
			var all string
			for _, c := range h.matchConditions {
				all += c.Expression
			}
			if h.namespaceSelector != nil && (len(h.namespaceSelector.MatchLabels) > 0 || len(h.namespaceSelector.MatchExpressions) > 0) {
				t.Errorf("%s: namespaceSelector %+v would hide the protected namespaces", h.name, h.namespaceSelector)
			}
			for _, ns := range excluded {
				if !strings.Contains(all, "'"+ns+"'") {
					t.Errorf("%s: match conditions do not name %s", h.name, ns)
				}
			}
			continue
		}
		if h.namespaceSelector == nil || !maps.Equal(h.namespaceSelector.MatchLabels, wantMatchLabels[h.name]) ||
			!slices.ContainsFunc(h.namespaceSelector.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool {
				return r.Key == "kubernetes.io/metadata.name" && r.Operator == metav1.LabelSelectorOpNotIn && slices.Equal(r.Values, excluded)
			}) {
			t.Errorf("%s: namespaceSelector %+v must exclude %v by kubernetes.io/metadata.name", h.name, h.namespaceSelector, excluded)
		}
		if len(h.matchConditions) == 0 {
			t.Errorf("%s: no matchConditions", h.name)
		}
	}
	for name := range wantPolicy {
		if !seen[name] {
			t.Errorf("webhook %s is missing", name)
		}
	}

	// The tamper guard's match conditions exclude exactly the identities
	// the handler trusts by default.
	for _, w := range validating.Webhooks {
		if w.Name != "managed-networkpolicies.moat.dev" && w.Name != "tenant-networkpolicies.moat.dev" && w.Name != "allowlist-deletes.moat.dev" {
			continue
		}
		var all string
		for _, c := range w.MatchConditions {
			all += c.Expression
		}
		for _, identity := range []string{ServiceAccountUser("moat-system", DefaultServiceAccountName), NamespaceControllerUser,
			GarbageCollectorUser, ControllerManagerUser, DefaultAdminGroups[0]} {
			if !strings.Contains(all, "'"+identity+"'") {
				t.Errorf("%s: match conditions do not exclude %s", w.Name, identity)
			}
		}
	}
}

// The optional webhook-ingress component admits the webhook and metrics
// ports of moat's pods, by the container port names of the Deployment, and
// nothing else.
func TestWebhookIngressComponent(t *testing.T) {
	var np networkingv1.NetworkPolicy
	data, err := os.ReadFile(filepath.Join("..", "manifests", "components", "webhook-ingress", "networkpolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &np); err != nil {
		t.Fatal(err)
	}
	var deployment appsv1.Deployment
	data, err = os.ReadFile(filepath.Join("..", "manifests", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		if strings.Contains(doc, "kind: Deployment") {
			if err := yaml.UnmarshalStrict([]byte(doc), &deployment); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !maps.Equal(np.Spec.PodSelector.MatchLabels, deployment.Spec.Template.Labels) {
		t.Errorf("podSelector %v does not select moat's pods %v", np.Spec.PodSelector.MatchLabels, deployment.Spec.Template.Labels)
	}
	ports := map[string]int32{}
	for _, p := range deployment.Spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	var admitted []string
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 {
			t.Errorf("a rule without sources admits everyone: %+v", rule)
		}
		for _, p := range rule.Ports {
			if _, ok := ports[p.Port.StrVal]; !ok {
				t.Errorf("port %v is not a container port of moat (%v)", p.Port, ports)
			}
			admitted = append(admitted, p.Port.StrVal)
		}
	}
	if !slices.Equal(admitted, []string{"webhook-server", "metrics"}) {
		t.Errorf("admitted ports %v, want the webhook and metrics ports only", admitted)
	}
}

// TestDocsProjectLabelPatch: the kustomize patch that docs/operations.md
// gives for Rancher and Capsule replaces the label key of the project-label
// webhook, and of no other (patching another entry would leave the group
// label unguarded).
func TestDocsProjectLabelPatch(t *testing.T) {
	var validating admissionregistrationv1.ValidatingWebhookConfiguration
	readManifest(t, "validating-webhook-configuration.yaml", &validating)
	doc, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Projects that span namespaces")
	if !ok {
		t.Fatal("docs/operations.md has no section on projects that span namespaces")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	patched := 0
	for _, line := range strings.Split(section, "\n") {
		_, path, ok := strings.Cut(line, "path: /webhooks/")
		if !ok {
			continue
		}
		index, rest, _ := strings.Cut(path, "/")
		i, err := strconv.Atoi(index)
		if err != nil || i >= len(validating.Webhooks) {
			t.Fatalf("the docs patch %q names no webhook of the configuration", strings.TrimSpace(line))
		}
		w := validating.Webhooks[i]
		if w.Name != "project-label.namespaces.moat.dev" {
			t.Errorf("the docs patch %q changes %s, not project-label.namespaces.moat.dev", strings.TrimSpace(line), w.Name)
		}
		switch rest {
		case "objectSelector/matchExpressions/0/key":
			if w.ObjectSelector == nil || len(w.ObjectSelector.MatchExpressions) == 0 || w.ObjectSelector.MatchExpressions[0].Key != "kubesphere.io/workspace" {
				t.Errorf("%s: the patched object selector does not hold the label key", w.Name)
			}
		case "matchConditions/0/expression":
			if len(w.MatchConditions) == 0 || !strings.Contains(w.MatchConditions[0].Expression, "kubesphere.io/workspace") {
				t.Errorf("%s: the patched match condition does not name the label key", w.Name)
			}
		default:
			t.Errorf("unexpected patch path %q", path)
		}
		patched++
	}
	if patched != 2 {
		t.Errorf("found %d patch paths in the docs, want 2", patched)
	}
}
