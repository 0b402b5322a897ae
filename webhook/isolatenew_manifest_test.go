package webhook

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The component manifests/isolate-new-namespaces routes Namespace CREATE
// requests, and nothing else, to NewNamespaceIsolator, and turns the flag on.
func TestIsolateNewNamespacesManifest(t *testing.T) {
	dir := filepath.Join("..", "manifests", "isolate-new-namespaces")
	data, err := os.ReadFile(filepath.Join(dir, "mutating-webhook-configuration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var config admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &config); err != nil {
		t.Fatal(err)
	}
	if len(config.Webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(config.Webhooks))
	}
	w := config.Webhooks[0]
	if svc := w.ClientConfig.Service; svc == nil || svc.Path == nil || *svc.Path != IsolateNewNamespacePath ||
		svc.Name != "moat-webhook-service" || svc.Namespace != "moat-system" {
		t.Errorf("clientConfig.service %+v, want moat-system/moat-webhook-service at %s", svc, IsolateNewNamespacePath)
	}
	wantRule := admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"namespaces"}},
	}
	if len(w.Rules) != 1 || !slices.Equal(w.Rules[0].Operations, wantRule.Operations) || !slices.Equal(w.Rules[0].Resources, wantRule.Resources) ||
		!slices.Equal(w.Rules[0].APIGroups, wantRule.APIGroups) {
		t.Errorf("rules %+v, want only CREATE of namespaces", w.Rules)
	}
	if w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("sideEffects %v, want None (the handler only patches)", w.SideEffects)
	}
	if w.TimeoutSeconds == nil || *w.TimeoutSeconds > 10 || w.FailurePolicy == nil || len(w.MatchConditions) == 0 {
		t.Errorf("timeoutSeconds %v, failurePolicy %v, matchConditions %v: want all set", w.TimeoutSeconds, w.FailurePolicy, w.MatchConditions)
	}
	excluded := []string{"kube-system", "kube-public", "kube-node-lease", "moat-system"}
	if w.NamespaceSelector == nil || !slices.ContainsFunc(w.NamespaceSelector.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool {
		return r.Key == "kubernetes.io/metadata.name" && r.Operator == metav1.LabelSelectorOpNotIn && slices.Equal(r.Values, excluded)
	}) {
		t.Errorf("namespaceSelector %+v must exclude %v", w.NamespaceSelector, excluded)
	}
	for _, ns := range excluded {
		if !neverIsolated(ns, "moat-system", []string{}) {
			t.Errorf("the handler does not protect %s, which the configuration excludes", ns)
		}
	}
	kustomization, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kustomization), "value: --isolate-new-namespaces=") {
		t.Error("the component does not add --isolate-new-namespaces to the Deployment")
	}
}
