package controller

// The RBAC markers below are the single source of moat's ClusterRole: `make
// manifests` turns them into manifests/rbac/role.yaml. They list every access
// that `moat serve` needs (the controller, the admission webhooks and their
// cache) and nothing more: no Secrets, no Pods, no wildcards, no escalate, bind
// or impersonate. Leader election (its Lease and the core/v1 Events it records
// about it) uses a Role in moat's own namespace, written by hand in
// manifests/rbac/leader_election_role.yaml.

// moat's ValidatingWebhookConfiguration: read once at start-up to check its
// routing against the flags (webhook.CheckRouting).
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,resourceNames=moat-validating-webhook-configuration,verbs=get

// Namespaces: watch the moat.dev/isolated label.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Services: translate Service peers into pod selectors and target ports.
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch

// Nodes (--allow-ingress-from-nodes): their addresses join the default
// ingress policy.
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch

// EndpointSlices: the API server's addresses for kubernetesAPI peers (moat's
// cache holds only those of default/kubernetes).
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// NetworkAllowlists: read the declarations and report their status.
// +kubebuilder:rbac:groups=moat.dev,resources=networkallowlists,verbs=get;list;watch
// +kubebuilder:rbac:groups=moat.dev,resources=networkallowlists/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=moat.dev,resources=networkallowlists/finalizers,verbs=update

// NetworkPolicies: the objects moat owns.
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete

// Events (events.k8s.io, as controller-runtime's GetEventRecorder records
// them): explain dropped peers and isolation changes.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Metrics: with --metrics-secure (the default) the metrics endpoint asks the
// API server who a scraper is and whether it may GET /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
