package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// webhookValidation is the configuration of the webhooks and the controller
// of the next manager that startManager starts. Specs that need another one (SCTP
// on) change it, restart the manager and put it back afterwards.
var webhookValidation = defaultWebhookValidation()

func defaultWebhookValidation() validation.Config {
	return validation.Config{
		PodCIDRs:     []netip.Prefix{e2ePodCIDR},
		ServiceCIDRs: []netip.Prefix{e2eServiceCIDR},
		// As moat serve's defaults: kube-system, kube-public,
		// kube-node-lease and moat-system are protected, tenant policies
		// restricted. The controller gets this same value (one
		// configuration, as moat serve hands it to both).
		TenantNetworkPolicies: validation.TenantPoliciesRestrict,
		Policy:                controllerPolicyConfig,
	}
}

// isolateNewLabel selects the namespaces that the webhooks isolate at
// creation (--isolate-new-namespaces=e2e.moat.dev/isolate-by-default=true,!e2e.moat.dev/not-a-tenant).
// Its webhook configuration is installed only by the specs that test it.
const isolateNewLabel = "e2e.moat.dev/isolate-by-default"

// notATenant is the selector's opt-out (!e2e.moat.dev/not-a-tenant): only
// admins may use it.
var notATenant = func() *labels.Requirement {
	r, err := labels.NewRequirement(notATenantLabel, selection.DoesNotExist, nil)
	if err != nil {
		panic(err)
	}
	return r
}()

const notATenantLabel = "e2e.moat.dev/not-a-tenant"

// webhookSystemNamespace is moat's own namespace as the webhooks of the next
// manager see it (never isolated at creation).
var webhookSystemNamespace = "moat-system"

// webhookReads counts the reads of the webhooks' lookups, from the cache
// and from the API server, by kind and key.
var webhookReads = &readLog{}

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
		ProjectLabelWriters: []string{workspaceController},

		IsolateNewNamespaces: labels.SelectorFromSet(labels.Set{isolateNewLabel: "true"}).Add(*notATenant),
		SystemNamespace:      webhookSystemNamespace,

		Reader:    &countingReader{Reader: mgr.GetCache(), log: webhookReads, source: "cache"},
		APIReader: &countingReader{Reader: mgr.GetAPIReader(), log: webhookReads, source: "api"},
	})
}

// readLog counts reads by "source kind namespace/name".
type readLog struct {
	mu     sync.Mutex
	counts map[string]int
}

func (r *readLog) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = nil
}

// Counts returns the reads since the last reset.
func (r *readLog) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}

func (r *readLog) add(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[key]++
}

// countingReader passes reads through to Reader and counts them in log.
type countingReader struct {
	client.Reader
	log    *readLog
	source string
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.log.add(fmt.Sprintf("%s get %s %s", c.source, reflect.TypeOf(obj).Elem().Name(), key))
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	c.log.add(fmt.Sprintf("%s list %s %s", c.source, reflect.TypeOf(list).Elem().Name(), o.Namespace))
	return c.Reader.List(ctx, list, opts...)
}
