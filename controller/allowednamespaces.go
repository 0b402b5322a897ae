package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"moat.dev/moat/policy"
)

// allowedNamespacesMissing is moat_allowed_ingress_namespaces_missing.
var allowedNamespacesMissing = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "moat_allowed_ingress_namespaces_missing",
	Help: "Number of namespaces named by --allowed-ingress-namespaces that do not exist: whoever creates one is admitted into every isolated namespace.",
})

func init() {
	metrics.Registry.MustRegister(allowedNamespacesMissing)
}

// allowedNamespaces reports the namespaces of --allowed-ingress-namespaces
// that do not exist (issue 20, case 10): every isolated namespace admits
// ingress from them by name, so whoever creates one is admitted everywhere.
// At start-up it logs them and sets moat_allowed_ingress_namespaces_missing;
// afterwards it follows the creation and deletion of exactly those
// namespaces through the manager's Namespace informer (one map lookup per
// event, a cache read only for a name it follows) and logs each change. It
// runs on every replica: the figure is about the configuration each one was
// started with.
type allowedNamespaces struct {
	reader   client.Reader
	informer func(context.Context) (cache.Informer, error)
	names    []string
	watched  map[string]bool

	synced  atomic.Bool
	mu      sync.Mutex
	missing []string
	started bool
}

// newAllowedNamespaces returns the runnable for cfg, or nil when there is
// nothing to follow.
func newAllowedNamespaces(c cache.Cache, cfg policy.Config) *allowedNamespaces {
	names := slices.Clone(cfg.AllowedIngressNamespaces)
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return nil
	}
	watched := make(map[string]bool, len(names))
	for _, n := range names {
		watched[n] = true
	}
	return &allowedNamespaces{
		reader:   c,
		informer: func(ctx context.Context) (cache.Informer, error) { return c.GetInformer(ctx, &corev1.Namespace{}) },
		names:    names,
		watched:  watched,
	}
}

var _ manager.LeaderElectionRunnable = &allowedNamespaces{}

// NeedLeaderElection is false: every replica reports on its own flags.
func (a *allowedNamespaces) NeedLeaderElection() bool { return false }

// Start follows the allowed namespaces until ctx ends.
func (a *allowedNamespaces) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("allowed-ingress-namespaces")
	informer, err := a.informer(ctx)
	if err != nil {
		return fmt.Errorf("watching Namespaces for %s: %w", policy.FlagAllowedIngressNamespaces, err)
	}
	onEvent := func(obj any) {
		if !a.synced.Load() {
			return // the first check, after the sync, covers it
		}
		name := ""
		switch o := obj.(type) {
		case *corev1.Namespace:
			name = o.Name
		case toolscache.DeletedFinalStateUnknown:
			if ns, ok := o.Obj.(*corev1.Namespace); ok {
				name = ns.Name
			}
		}
		if a.watched[name] {
			a.check(ctx, log)
		}
	}
	registration, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: onEvent, DeleteFunc: onEvent})
	if err != nil {
		return fmt.Errorf("watching Namespaces for %s: %w", policy.FlagAllowedIngressNamespaces, err)
	}
	defer func() { _ = informer.RemoveEventHandler(registration) }()
	if !toolscache.WaitForCacheSync(ctx.Done(), registration.HasSynced) {
		return nil
	}
	a.synced.Store(true)
	a.check(ctx, log)
	<-ctx.Done()
	return nil
}

// check reads the allowed namespaces from the cache, sets the gauge and
// logs what changed (everything, the first time).
func (a *allowedNamespaces) check(ctx context.Context, log logr.Logger) {
	// Held across the reads too, so that a slower check never overwrites
	// the result of a later one.
	a.mu.Lock()
	defer a.mu.Unlock()
	var missing []string
	for _, name := range a.names {
		err := a.reader.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, name)
		case err != nil:
			log.Error(err, "reading an allowed ingress namespace", "namespace", name)
			return
		}
	}
	before, first := a.missing, !a.started
	a.missing, a.started = missing, true
	allowedNamespacesMissing.Set(float64(len(missing)))
	if first {
		if len(missing) > 0 {
			log.Info("namespaces named by "+policy.FlagAllowedIngressNamespaces+" do not exist: whoever creates one is admitted into every isolated namespace; create them or remove them from the flag",
				"missing", missing)
		}
		return
	}
	for _, name := range before {
		if !slices.Contains(missing, name) {
			log.Info("an allowed ingress namespace now exists", "namespace", name)
		}
	}
	for _, name := range missing {
		if !slices.Contains(before, name) {
			log.Info("an allowed ingress namespace no longer exists: whoever creates it again is admitted into every isolated namespace", "namespace", name)
		}
	}
}
