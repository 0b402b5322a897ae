// Package webhook holds moat's admission webhooks: validating webhooks for
// NetworkAllowlists, NetworkPolicies and Namespaces that adapt admission
// requests to the pure rules of package validation, and the mutating
// Namespace webhook that writes a project's default isolation NetworkPolicies
// while the request that isolates it is being admitted.
//
// The handlers are thin: they decode, call validation (or the Converger), and
// turn the result into structured API errors and admission warnings. The
// webhook configurations that route requests to them are in
// manifests/webhook; docs/operations.md explains their failure policies.
package webhook

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
	"moat.dev/moat/validation"
)

// Paths on the webhook server. manifests/webhook routes each webhook
// configuration entry to one of them.
const (
	// ValidateNetworkAllowlistPath serves the NetworkAllowlist validating webhook.
	ValidateNetworkAllowlistPath = "/validate-moat-dev-v1alpha1-networkallowlist"
	// ValidateNetworkPolicyPath serves the NetworkPolicy validating webhook
	// (checks and tamper guard).
	ValidateNetworkPolicyPath = "/validate-networking-k8s-io-v1-networkpolicy"
	// ValidateNamespacePath serves the Namespace validating webhook.
	ValidateNamespacePath = "/validate-v1-namespace"
	// MutateNamespacePath serves the mutating Namespace webhook that applies
	// the default isolation policies.
	MutateNamespacePath = "/mutate-v1-namespace"
)

// DefaultApplyTimeout bounds the policy write of the mutating Namespace
// webhook when Options.ApplyTimeout is zero. It stays below the webhook's
// timeoutSeconds (10) so that moat, not the API server, decides what happens
// when the write is slow.
const DefaultApplyTimeout = 8 * time.Second

// Converger writes what policy.Render says a namespace needs. The mutating
// Namespace webhook calls it during admission; the isolation controller
// implements it.
type Converger interface {
	// ApplyNamespace creates or updates (never deletes) the NetworkPolicies
	// that the namespace ns, as it is about to be stored, needs. It returns
	// once they are written. ns.ResourceVersion is that of the stored
	// namespace the request changes, so that what is written can be tied to
	// the request that has not been stored yet. When policies it does not
	// manage hold the names of policies the namespace needs, it writes the
	// others and returns a *policy.NamesTakenError (possibly joined with
	// other errors), which the webhook reports in its answer.
	ApplyNamespace(ctx context.Context, ns *corev1.Namespace) error
}

// PreparingConverger is a Converger that can split ApplyNamespace into its
// reads and its writes. The mutating Namespace webhook then does the reads
// while its forgery guard reads the stored namespace, and makes the writes
// only when the guard admits the request: one round trip to the API server
// less for the request being admitted, and still no write that the guard has
// not allowed.
type PreparingConverger interface {
	Converger
	// PrepareNamespace reads what ApplyNamespace(ctx, ns) needs and returns
	// its writes, or nil when there is nothing to write. It writes nothing.
	PrepareNamespace(ctx context.Context, ns *corev1.Namespace) (write func(context.Context) error, err error)
}

// Options configure moat's webhooks.
type Options struct {
	// Validation is moat's one configuration value (validation.Config):
	// the rules' settings and, in Validation.Policy, what moat admits, the
	// protected namespaces and the project label. The controller gets the
	// same value.
	Validation validation.Config

	// Trust says who may change the NetworkPolicies moat manages.
	Trust Trust

	// Converger writes the default isolation policies of a namespace that
	// becomes isolated. Required.
	Converger Converger

	// ApplyTimeout bounds the Converger call; zero means DefaultApplyTimeout.
	ApplyTimeout time.Duration

	// IsolateNewNamespaces selects the namespaces that are labelled
	// moat.dev/isolated: "true" when they are created (NewNamespaceIsolator);
	// nil turns that off.
	IsolateNewNamespaces labels.Selector
	// SystemNamespace is moat's own namespace, which is never isolated.
	SystemNamespace string

	// Reader and APIReader serve the lookups: nil means the manager's cache
	// and API reader. Tests pass wrapping readers to count reads.
	Reader, APIReader client.Reader

	// ProjectLabelWriters are the user names of the controllers trusted to
	// write the project label (Validation.Policy.ProjectLabel,
	// --project-label-writers). Only they and members of Trust.AdminGroups
	// may set, change or remove it on a Namespace.
	ProjectLabelWriters []string
}

// SetupWithManager registers every webhook of moat on the manager's webhook
// server. Lookups are served from the manager's cache; a request that the
// cache would reject or warn about is checked again against the API server,
// so a Service created a moment ago is never reported missing.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Converger == nil {
		return errors.New("webhook.Options.Converger is required: the mutating Namespace webhook writes policies through it")
	}
	if opts.ApplyTimeout == 0 {
		opts.ApplyTimeout = DefaultApplyTimeout
	}

	// Start the informers the lookups need together with the cache, so the
	// first admission request does not wait for them to sync.
	for _, obj := range []client.Object{&corev1.Service{}, &corev1.Namespace{}, &v1alpha1.NetworkAllowlist{}} {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj, cache.BlockUntilSynced(false)); err != nil {
			return err
		}
	}

	reader, apiReader := opts.Reader, opts.APIReader
	if reader == nil {
		reader = mgr.GetCache()
	}
	if apiReader == nil {
		apiReader = mgr.GetAPIReader()
	}
	// The validating webhooks only read what they look up, so the cached
	// lookups skip the cache's deep copy of each Service and Namespace
	// (lookup.NewReadOnly); nothing on their path modifies those objects.
	cached, live := lookup.NewReadOnly(reader), lookup.New(apiReader)

	allowlists := &AllowlistValidator{
		Config: opts.Validation,
		Cached: cached,
		Live:   live,
		Trust:  opts.Trust,
	}
	// The allowlist webhook is the one on every tenant's write path: it
	// decodes each object once (NewValidatingWebhook) and otherwise answers
	// as the generic webhook of ctrl.NewWebhookManagedBy(...).WithValidator.
	allowlistWebhook, err := NewValidatingWebhook(mgr.GetScheme(), admission.Validator[*v1alpha1.NetworkAllowlist](allowlists))
	if err != nil {
		return err
	}
	mgr.GetWebhookServer().Register(ValidateNetworkAllowlistPath, allowlistWebhook)

	policies := &NetworkPolicyValidator{Config: opts.Validation, Trust: opts.Trust, Cached: cached, Live: live}
	if err := ctrl.NewWebhookManagedBy(mgr, &networkingv1.NetworkPolicy{}).
		WithValidator(policies).
		WithValidatorCustomPath(ValidateNetworkPolicyPath).
		Complete(); err != nil {
		return err
	}

	if err := ctrl.NewWebhookManagedBy(mgr, &corev1.Namespace{}).
		WithValidator(&NamespaceValidator{Config: opts.Validation, ProjectLabel: ProjectLabelGuard{
			Key: opts.Validation.Policy.ProjectLabel, Writers: opts.ProjectLabelWriters, AdminGroups: opts.Trust.AdminGroups,
		}}).
		WithValidatorCustomPath(ValidateNamespacePath).
		Complete(); err != nil {
		return err
	}

	guard := &AdmissionWriteGuard{Reader: apiReader, ProtectedNamespaces: opts.Validation.Policy.ProtectedNamespaces}
	if err := observeNamespaces(mgr.GetCache(), guard); err != nil {
		return err
	}
	mutator := &NamespaceMutator{
		Converger: opts.Converger,
		Decoder:   admission.NewDecoder(mgr.GetScheme()),
		Timeout:   opts.ApplyTimeout,
		Guard:     guard,
	}
	mgr.GetWebhookServer().Register(MutateNamespacePath, &admission.Webhook{Handler: mutator})

	mgr.GetWebhookServer().Register(IsolateNewNamespacePath, &admission.Webhook{Handler: &NewNamespaceIsolator{
		Selector:        opts.IsolateNewNamespaces,
		SystemNamespace: opts.SystemNamespace,
		Protected:       opts.Validation.Policy.ProtectedNamespaces,
		Trust:           opts.Trust,
	}})
	return nil
}
