package e2e

import (
	"net/netip"

	"sigs.k8s.io/controller-runtime/pkg/manager"

	"moat.dev/moat/validation"
	"moat.dev/moat/webhook"
)

// Identities the webhooks trust in this suite: moat's ServiceAccount in
// moat-system (as the manifests' matchConditions assume), system:masters and
// one extra admin group that only the handler knows about (it is not in the
// manifests' matchConditions), so that requests from its members reach moat
// and exercise the handler's own check.
const (
	moatServiceAccount = "system:serviceaccount:moat-system:moat"
	extraAdminGroup    = "e2e:network-admins"
	// workspaceController may write the project label
	// (--project-label-writers), as KubeSphere's controller would.
	workspaceController = "system:serviceaccount:kubesphere-system:ks-controller-manager"
)

// Cluster networks the webhooks are told about (as --pod-cidrs and
// --service-cidrs). They do not overlap the controller's allowed ingress CIDR.
var (
	e2ePodCIDR     = netip.MustParsePrefix("10.244.0.0/16")
	e2eServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
)

// webhookValidation is the validation configuration of the webhooks of the
// next manager that startManager starts. Specs that need another one (SCTP
// on) change it, restart the manager and put it back afterwards.
var webhookValidation = defaultWebhookValidation()

func defaultWebhookValidation() validation.Config {
	return validation.Config{
		PodCIDRs:     []netip.Prefix{e2ePodCIDR},
		ServiceCIDRs: []netip.Prefix{e2eServiceCIDR},
		ProjectLabel: projectLabel,
	}
}

// setupWebhooks registers moat's webhooks on mgr, with the isolation
// controller's Reconciler as the mutating webhook's Converger, as `moat
// serve` does.
func setupWebhooks(mgr manager.Manager, converger webhook.Converger) error {
	return webhook.SetupWithManager(mgr, webhook.Options{
		Validation: webhookValidation,
		Trust: webhook.Trust{
			ServiceAccount: moatServiceAccount,
			AdminGroups:    []string{"system:masters", extraAdminGroup},
		},
		Converger:           converger,
		ProjectLabel:        projectLabel,
		ProjectLabelWriters: []string{workspaceController},
	})
}
