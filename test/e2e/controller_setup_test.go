package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"moat.dev/moat/controller"
	"moat.dev/moat/policy"
)

// Cluster configuration of the isolation controller in this suite: one
// allowed ingress namespace and one allowed ingress CIDR (as
// --allowed-ingress-namespaces and --allowed-ingress-cidrs), DNS at the
// default kube-system/kube-dns plus a node-local DNS cache (--dns-ips),
// KubeSphere's workspace label as the project label (--project-label, as
// manifests/webhook assumes) and ingress from the nodes
// (--allow-ingress-from-nodes; envtest has no Nodes until a spec creates one).
const (
	allowedIngressNamespace = "e2e-monitoring"
	allowedIngressCIDR      = "10.0.0.0/24"
	nodeLocalDNS            = "169.254.25.10"
	projectLabel            = "kubesphere.io/workspace"
)

var controllerPolicyConfig = policy.Config{
	AllowedIngressNamespaces: []string{allowedIngressNamespace},
	AllowedIngressCIDRs:      []string{allowedIngressCIDR},
	DNSService:               &policy.DefaultDNSService,
	DNSIPs:                   []netip.Addr{netip.MustParseAddr(nodeLocalDNS)},
	ProjectLabel:             projectLabel,
	AllowIngressFromNodes:    true,
}

// moatReconciler is the isolation controller of the running manager; the
// mutating Namespace webhook uses it as its Converger.
var moatReconciler *controller.Reconciler

// writes counts every write the isolation controller (and the webhook,
// through its Converger) makes to NetworkPolicies and NetworkAllowlists.
var writes = &writeLog{}

// setupController registers the isolation controller on mgr with a client
// that records its writes in writes and the namespaces it reads.
func setupController(mgr manager.Manager) (*controller.Reconciler, error) {
	r, err := controller.SetupWithManager(mgr, controller.Options{
		Config: webhookValidation,
		Client: &recordingClient{Client: mgr.GetClient(), log: writes},
		// A node address change rewrites the default ingress policy of
		// every isolated namespace (a few hundred here) within 1 s.
		MaxConcurrentReconciles: 16,
	})
	if err != nil {
		return nil, err
	}
	moatReconciler = r
	return r, nil
}

// writeLog records writes and namespace reads.
type writeLog struct {
	mu     sync.Mutex
	writes []string
	reads  map[string]int
}

// reset forgets everything recorded so far.
func (w *writeLog) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = nil
	w.reads = nil
}

// Writes returns the writes recorded since the last reset, e.g.
// "apply NetworkPolicy ns/moat-default-ingress".
func (w *writeLog) Writes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

// NamespaceReads returns how often the named Namespace was read (once per
// reconcile) since the last reset.
func (w *writeLog) NamespaceReads(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reads[name]
}

func (w *writeLog) write(verb string, obj any) {
	var what string
	switch o := obj.(type) {
	case interface {
		GetKind() string
		GetNamespace() string
		GetName() string
	}:
		// The unstructured apply configurations the controller sends.
		what = fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
	case client.Object:
		what = fmt.Sprintf("%s %s/%s", reflect.TypeOf(o).Elem().Name(), o.GetNamespace(), o.GetName())
	default:
		what = fmt.Sprintf("%T", o)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, verb+" "+what)
}

func (w *writeLog) read(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reads == nil {
		w.reads = map[string]int{}
	}
	w.reads[name]++
}

// recordingClient passes every call through to Client and records the writes
// and the Namespace reads.
type recordingClient struct {
	client.Client
	log *writeLog
}

func (c *recordingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Namespace); ok {
		c.log.read(key.Name)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *recordingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.log.write("create", obj)
	return c.Client.Create(ctx, obj, opts...)
}

func (c *recordingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.log.write("update", obj)
	return c.Client.Update(ctx, obj, opts...)
}

func (c *recordingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.log.write("patch", obj)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *recordingClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	c.log.write("apply", obj)
	return c.Client.Apply(ctx, obj, opts...)
}

func (c *recordingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.log.write("delete", obj)
	return c.Client.Delete(ctx, obj, opts...)
}

func (c *recordingClient) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	c.log.write("deleteAllOf", obj)
	return c.Client.DeleteAllOf(ctx, obj, opts...)
}

func (c *recordingClient) Status() client.SubResourceWriter {
	return &recordingStatusWriter{SubResourceWriter: c.Client.Status(), log: c.log}
}

func (c *recordingClient) SubResource(subResource string) client.SubResourceClient {
	return &recordingSubResourceClient{SubResourceClient: c.Client.SubResource(subResource), log: c.log, name: subResource}
}

type recordingStatusWriter struct {
	client.SubResourceWriter
	log *writeLog
}

func (w *recordingStatusWriter) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	w.log.write("create status", obj)
	return w.SubResourceWriter.Create(ctx, obj, sub, opts...)
}

func (w *recordingStatusWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	w.log.write("update status", obj)
	return w.SubResourceWriter.Update(ctx, obj, opts...)
}

func (w *recordingStatusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	w.log.write("patch status", obj)
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func (w *recordingStatusWriter) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	w.log.write("apply status", obj)
	return w.SubResourceWriter.Apply(ctx, obj, opts...)
}

type recordingSubResourceClient struct {
	client.SubResourceClient
	log  *writeLog
	name string
}

func (w *recordingSubResourceClient) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	w.log.write("create "+w.name, obj)
	return w.SubResourceClient.Create(ctx, obj, sub, opts...)
}

func (w *recordingSubResourceClient) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	w.log.write("update "+w.name, obj)
	return w.SubResourceClient.Update(ctx, obj, opts...)
}

func (w *recordingSubResourceClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	w.log.write("patch "+w.name, obj)
	return w.SubResourceClient.Patch(ctx, obj, patch, opts...)
}

func (w *recordingSubResourceClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	w.log.write("apply "+w.name, obj)
	return w.SubResourceClient.Apply(ctx, obj, opts...)
}
