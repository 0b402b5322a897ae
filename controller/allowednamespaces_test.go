package controller

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"moat.dev/moat/policy"
)

func TestAllowedNamespacesCheck(t *testing.T) {
	if newAllowedNamespaces(nil, policy.Config{}) != nil {
		t.Error("newAllowedNamespaces without --allowed-ingress-namespaces: want nil (nothing to follow)")
	}
	c := fake.NewClientBuilder().WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring"}}).Build()
	a := &allowedNamespaces{reader: c, names: []string{"gateway", "ingress", "monitoring"}}
	ctx := context.Background()

	a.check(ctx, logr.Discard())
	if diff := cmp.Diff([]string{"gateway", "ingress"}, a.missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(allowedNamespacesMissing); got != 2 {
		t.Errorf("moat_allowed_ingress_namespaces_missing = %v, want 2", got)
	}

	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gateway"}}); err != nil {
		t.Fatal(err)
	}
	a.check(ctx, logr.Discard())
	if diff := cmp.Diff([]string{"ingress"}, a.missing); diff != "" {
		t.Errorf("missing after gateway was created (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(allowedNamespacesMissing); got != 1 {
		t.Errorf("moat_allowed_ingress_namespaces_missing = %v, want 1", got)
	}
}
