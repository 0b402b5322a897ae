package e2e

import (
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// registerMoat wires moat's webhooks and controllers into mgr, exactly as
// `moat serve` does. It is the one place the suite learns about them: the
// webhook and controller packages add their SetupWithManager calls here, e.g.
//
//	if err := webhook.SetupWithManager(mgr, opts); err != nil {
//		return err
//	}
//	if err := controller.SetupWithManager(mgr, opts); err != nil {
//		return err
//	}
//
// It is called on every startManager, with a fresh manager each time.
func registerMoat(mgr manager.Manager) error {
	// The isolation controller (controller_setup_test.go); the Reconciler
	// it returns is the mutating Namespace webhook's Converger.
	r, err := setupController(mgr)
	if err != nil {
		return err
	}
	// The admission webhooks (webhook_setup_test.go).
	return setupWebhooks(mgr, r)
}
