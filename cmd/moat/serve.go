package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/certs"
	"moat.dev/moat/controller"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
	"moat.dev/moat/webhook"
)

// Defaults of `moat serve`.
const (
	defaultLeaderElectionID = "moat.dev"
	defaultSystemNamespace  = "moat-system"
	// podNamespaceEnv names the environment variable (set from the downward
	// API) that holds moat's namespace.
	podNamespaceEnv = "POD_NAMESPACE"
)

// serveOptions are the flags of `moat serve`.
type serveOptions struct {
	webhookHost    string
	webhookPort    int
	certDir        string
	certName       string
	keyName        string
	readTimeout    time.Duration
	writeTimeout   time.Duration
	metricsAddr    string
	metricsSecure  bool
	probeAddr      string
	tlsMinVersion  string
	enableHTTP2    bool
	leaderElect    bool
	leaderElectNS  string
	leaderElectID  string
	serviceAccount string
	adminGroups    []string
	// isolateNew is --isolate-new-namespaces; systemNamespace is moat's own.
	isolateNew      string
	systemNamespace string
	clientCAName    string
	labelWriters    []string
	// webhookConfiguration is --webhook-configuration: the
	// ValidatingWebhookConfiguration checked against the flags at start-up.
	webhookConfiguration string
	// reconcileWorkers is --concurrent-reconciles.
	reconcileWorkers int
	// cfg is moat's one configuration value, handed unchanged to the
	// controller and the webhooks.
	cfg validation.Config
	zap zap.Options
}

func newServeCommand() *cobra.Command {
	podNamespace := os.Getenv(podNamespaceEnv)
	if podNamespace == "" {
		podNamespace = defaultSystemNamespace
	}
	o := &serveOptions{zap: zap.Options{}, systemNamespace: podNamespace}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run moat's admission webhooks and isolation controller (in the cluster)",
		Long: `Serve runs moat's admission webhooks (validating NetworkAllowlists, NetworkPolicies
and Namespaces; writing the default isolation policies when a namespace becomes
isolated) and the isolation controller in one controller-runtime manager.

The webhook server reads its certificate and key (--cert-name and --key-name,
tls.crt and tls.key by default) from --cert-dir and reloads them when they
change. The controller runs on the elected leader only; every
replica serves webhooks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Stop gracefully on SIGINT/SIGTERM, or when the caller's
			// context ends.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.webhookHost, "webhook-host", "", "address the webhook server listens on (empty: all interfaces)")
	fs.IntVar(&o.webhookPort, "webhook-port", crwebhook.DefaultPort, "port the webhook server listens on")
	fs.StringVar(&o.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory holding the webhook serving certificate and key (reloaded when they change)")
	fs.StringVar(&o.certName, "cert-name", "tls.crt", "file name of the webhook serving certificate in --cert-dir")
	fs.StringVar(&o.keyName, "key-name", "tls.key", "file name of the webhook serving key in --cert-dir")
	fs.DurationVar(&o.readTimeout, "webhook-read-timeout", webhook.DefaultReadTimeout, "longest time a webhook request body may take to arrive; 0 means no limit")
	fs.DurationVar(&o.writeTimeout, "webhook-write-timeout", webhook.DefaultWriteTimeout, "longest time from a webhook request's headers to the end of its answer; 0 means no limit")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", `address the metrics endpoint listens on; "0" turns it off`)
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "serve metrics over HTTPS, to callers authenticated and authorized (TokenReview, SubjectAccessReview) for GET /metrics")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address the /healthz and /readyz probes listen on")
	fs.StringVar(&o.tlsMinVersion, "tls-min-version", "1.3", `minimum TLS version of the webhook and metrics servers: "1.2" or "1.3"`)
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false, "serve HTTP/2 on the webhook and metrics servers (off by default: HTTP/2 rapid reset and stream cancellation CVEs)")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader so that only one replica runs the controller")
	fs.StringVar(&o.leaderElectNS, "leader-election-namespace", "", "namespace of the leader election Lease (empty: the pod's namespace)")
	fs.StringVar(&o.leaderElectID, "leader-election-id", defaultLeaderElectionID, "name of the leader election Lease")
	fs.StringVar(&o.serviceAccount, "service-account", webhook.ServiceAccountUser(podNamespace, webhook.DefaultServiceAccountName),
		"moat's own user name, trusted to change the NetworkPolicies it manages (the default is moat's ServiceAccount in $"+podNamespaceEnv+", or in "+defaultSystemNamespace+" when that is unset)")
	fs.StringSliceVar(&o.adminGroups, "admin-groups", webhook.DefaultAdminGroups,
		"groups whose members may change or delete NetworkPolicies managed by moat (comma-separated; also update the matchConditions of managed-networkpolicies.moat.dev)")
	fs.StringVar(&o.isolateNew, "isolate-new-namespaces", "",
		`label selector (e.g. "tenant", "env in (dev,prod)"): new namespaces that match are created labelled moat.dev/isolated=true; `+
			`empty (the default) turns this off. Needs the webhook of manifests/isolate-new-namespaces`)
	fs.StringVar(&o.clientCAName, "webhook-client-ca-name", "",
		"file name, in --cert-dir, of a CA bundle: when set, the webhook server only answers clients with a certificate signed by it "+
			"(configure the API server to present one, docs/operations.md); empty: any client that reaches the port")
	fs.StringSliceVar(&o.labelWriters, "project-label-writers", nil,
		"user names trusted to set, change or remove the --project-label label on Namespaces besides the --admin-groups, e.g. the workspace or tenant controller's ServiceAccount system:serviceaccount:kubesphere-system:ks-controller-manager (comma-separated)")
	fs.IntVar(&o.reconcileWorkers, "concurrent-reconciles", controller.DefaultMaxConcurrentReconciles,
		"namespaces the isolation controller converges in parallel; raise it in clusters with many isolated namespaces, where a "+
			"node address change (--allow-ingress-from-nodes) or a DNS Service change rewrites every one of them")
	addConfigFlags(fs, podNamespace, &o.cfg)
	fs.StringVar(&o.webhookConfiguration, "webhook-configuration", webhook.DefaultValidatingConfiguration,
		`moat's ValidatingWebhookConfiguration, checked at start-up against --project-label and --protected-namespaces (moat refuses to start when it would not route what they need to moat); "" skips the check`)

	goFlags := flag.NewFlagSet("serve", flag.ContinueOnError)
	config.RegisterFlags(goFlags) // --kubeconfig
	o.zap.BindFlags(goFlags)      // --zap-log-level, --zap-devel, ...
	fs.AddGoFlagSet(goFlags)
	return cmd
}

// tlsVersions maps --tls-min-version values to crypto/tls constants.
var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// tlsOptions returns the TLS settings shared by the webhook and metrics
// servers.
func (o *serveOptions) tlsOptions() ([]func(*tls.Config), error) {
	minVersion, ok := tlsVersions[o.tlsMinVersion]
	if !ok {
		return nil, fmt.Errorf(`--tls-min-version: %q is not supported: use "1.2" or "1.3"`, o.tlsMinVersion)
	}
	opts := []func(*tls.Config){func(c *tls.Config) { c.MinVersion = minVersion }}
	if !o.enableHTTP2 {
		opts = append(opts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	return opts, nil
}

// newScheme returns the scheme of every type moat reads or writes.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(controller.AddAdminTierToScheme(s))
	return s
}

// runServe runs the manager until ctx ends.
func runServe(ctx context.Context, o *serveOptions) error {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("serve")

	tlsOpts, err := o.tlsOptions()
	if err != nil {
		return err
	}
	if o.serviceAccount == "" {
		return errors.New("--service-account must name moat's own user, e.g. system:serviceaccount:moat-system:moat")
	}
	isolateNew, err := parseIsolateNewNamespaces(o.isolateNew)
	if err != nil {
		return err
	}
	if o.reconcileWorkers < 1 {
		return fmt.Errorf("--concurrent-reconciles must be at least 1, got %d", o.reconcileWorkers)
	}
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}

	// The webhook server serves from this watcher, which reloads the files
	// when they change and exports the certificate's expiry as a metric.
	certWatcher, err := certs.NewServingWatcher(o.certDir, o.certName, o.keyName)
	if err != nil {
		return err
	}
	webhookTLSOpts := append(slices.Clone(tlsOpts), func(c *tls.Config) { c.GetCertificate = certWatcher.GetCertificate })

	metricsOpts := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.metricsSecure,
		TLSOpts:       tlsOpts,
	}
	if o.metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:  newScheme(),
		Metrics: metricsOpts,
		WebhookServer: webhook.NewServer(crwebhook.Options{
			Host:     o.webhookHost,
			Port:     o.webhookPort,
			CertDir:  o.certDir,
			CertName: o.certName,
			KeyName:  o.keyName,
			// With a client CA, the TLS handshake refuses callers without
			// a certificate it signed (RequireAndVerifyClientCert).
			ClientCAName: o.clientCAName,
			TLSOpts:      webhookTLSOpts,
		}, o.readTimeout, o.writeTimeout),
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              o.leaderElectID,
		LeaderElectionNamespace:       o.leaderElectNS,
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// moat only reads the NetworkPolicies it manages: caching
			// only those keeps memory flat in clusters with many
			// user-written policies.
			&networkingv1.NetworkPolicy{}: {Label: labels.SelectorFromSet(policy.ManagedLabels())},
		}},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	if err := checkWebhookRouting(ctx, mgr.GetAPIReader(), o.webhookConfiguration, o.cfg.Policy); err != nil {
		return err
	}

	if err := mgr.Add(certWatcher); err != nil {
		return fmt.Errorf("adding the certificate watcher: %w", err)
	}

	// The isolation controller; it is also the Converger of the mutating
	// Namespace webhook.
	reconciler, err := controller.SetupWithManager(mgr, controller.Options{
		Config:                  o.cfg,
		MaxConcurrentReconciles: o.reconcileWorkers,
	})
	if err != nil {
		return err
	}

	if err := webhook.SetupWithManager(mgr, webhook.Options{
		Validation:          o.cfg,
		Trust:               webhook.Trust{ServiceAccount: o.serviceAccount, AdminGroups: o.adminGroups},
		Converger:           reconciler,
		ProjectLabelWriters: o.labelWriters,

		IsolateNewNamespaces: isolateNew,
		SystemNamespace:      o.systemNamespace,
	}); err != nil {
		return fmt.Errorf("setting up the webhooks: %w", err)
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}

	log.Info("starting", "webhookPort", o.webhookPort, "certDir", o.certDir, "leaderElection", o.leaderElect,
		"sctpEnabled", o.cfg.SCTPEnabled, "protectedNamespaces", o.cfg.Policy.ProtectedNamespaces,
		"tenantNetworkPolicies", o.cfg.TenantNetworkPolicies, "clientCA", o.clientCAName != "",
		"isolateNewNamespaces", o.isolateNew, "serviceAccount", o.serviceAccount, "adminGroups", o.adminGroups,
		"projectLabel", o.cfg.Policy.ProjectLabel, "projectLabelWriters", o.labelWriters, "dnsIPs", o.cfg.Policy.DNSIPs,
		"allowIngressFromNodes", o.cfg.Policy.AllowIngressFromNodes, "enforcement", o.cfg.Policy.Enforcement)
	return mgr.Start(ctx)
}

// parseIsolateNewNamespaces parses --isolate-new-namespaces: a label
// selector, or nil when s is empty (off).
func parseIsolateNewNamespaces(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--isolate-new-namespaces: %q is not a label selector (write it as for kubectl get -l, e.g. \"tenant\" or \"env in (dev,prod)\"): %w", s, err)
	}
	if sel.Empty() {
		return nil, fmt.Errorf("--isolate-new-namespaces: %q selects nothing: use a selector such as \"tenant\", or leave the flag empty to turn the feature off", s)
	}
	return sel, nil
}

// checkWebhookRouting reads moat's ValidatingWebhookConfiguration and
// refuses to start when it would not route to moat what the flags need
// (webhook.CheckRouting). A configuration that does not exist (a local run
// without webhooks) is logged and not checked.
func checkWebhookRouting(ctx context.Context, reader client.Reader, name string, cfg policy.Config) error {
	if name == "" {
		return nil
	}
	config := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := reader.Get(ctx, client.ObjectKey{Name: name}, config); err != nil {
		if apierrors.IsNotFound(err) {
			ctrl.Log.WithName("serve").Info("moat's ValidatingWebhookConfiguration does not exist: its routing is not checked against the flags", "name", name)
			return nil
		}
		return fmt.Errorf("reading the ValidatingWebhookConfiguration %s to check it against the flags (--webhook-configuration=\"\" skips the check): %w", name, err)
	}
	return webhook.CheckRouting(config, cfg.ProjectLabel, cfg.ProtectedNamespaces)
}
