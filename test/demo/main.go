// Command demo walks through every scenario of the KubeSphere "Project
// Network Isolation" guide (DESIGN.md's seed document) on a cluster where
// moat serves: it enables isolation on demo-project-1, opens it with
// NetworkAllowlists exactly as the guide does, shows that what cannot work is
// rejected, and disables isolation again. For each step it prints what it
// does, what the API server answered and the NetworkPolicies that resulted,
// and checks the outcome against the guide. It exits with status 1 when any
// check fails.
//
// `make demo` runs it on the embedded control plane of `make run`:
//
//	go run ./test/localrun -- bin/moat-demo
//
// It needs a fresh cluster (it refuses to run when demo-project-1 exists)
// and reads the cluster from $KUBECONFIG or --kubeconfig.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/controller"
	"moat.dev/moat/policy"
)

// Names from the guide.
const (
	project1 = "demo-project-1"
	project2 = "demo-project-2"
)

// How long moat may take: DESIGN §4 promises NetworkPolicies within one
// second of an allowlist change; status and clean-up get a little longer.
const (
	policyDeadline = time.Second
	statusDeadline = 5 * time.Second
	pollInterval   = 10 * time.Millisecond
)

func main() {
	config.RegisterFlags(flag.CommandLine)
	flag.Parse()
	os.Exit(run())
}

func run() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := newDemo()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	if err := d.walk(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo stopped:", err)
		d.summary()
		return 1
	}
	return d.summary()
}

// demo holds the clients and the report.
type demo struct {
	*report
	c        client.Client
	cfg      *rest.Config
	warnings *warningLog
}

// warningLog collects the warnings the API server sends back.
type warningLog struct {
	mu       sync.Mutex
	warnings []string
}

// HandleWarningHeaderWithContext implements rest.WarningHandlerWithContext.
func (w *warningLog) HandleWarningHeaderWithContext(_ context.Context, code int, _ string, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.warnings
	w.warnings = nil
	return out
}

func newDemo() (*demo, error) {
	cfg, err := config.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster to talk to (set KUBECONFIG or run `make demo`): %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	warnings := &warningLog{}
	cfg.WarningHandler = nil
	cfg.WarningHandlerWithContext = warnings
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(moatv1alpha1.AddToScheme(scheme))
	utilruntime.Must(controller.AddAdminTierToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &demo{report: &report{out: os.Stdout}, c: c, cfg: cfg, warnings: warnings}, nil
}

// walk runs the scenarios in the guide's order. It returns an error only
// when the demo cannot go on (the cluster is unreachable or not fresh).
func (d *demo) walk(ctx context.Context) error {
	fmt.Fprintln(d.out, `moat demo: project network isolation, scenario by scenario

Every step below comes from the KubeSphere guide "Project Network Isolation".
It runs against a real kube-apiserver with moat's webhooks and controller
serving. Lines starting with "$" show the kubectl command that does the same;
"✔" marks an outcome that matches the guide, "✘" one that does not.`)

	steps := []func(context.Context) error{
		d.setUp,
		d.enableIsolation,
		d.internalIngress,
		d.serviceEgress,
		d.externalIngress,
		d.externalEgress,
		d.troubleshooting,
		d.adminTier,
		d.selectorlessService,
		d.sctp,
		d.disableIsolation,
		d.adminTierGone,
		d.selfService,
		d.workspaceProjects,
		d.nodeLocalDNSAndAPIServer,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// setUp creates the two projects and the nginx Service of the guide.
func (d *demo) setUp(ctx context.Context) error {
	d.section("Two projects and a Service",
		"The guide assumes two projects (namespaces): demo-project-1, which we will",
		"isolate, and demo-project-2, where an NGINX workload is exposed by the",
		"Service nginx on port 80/TCP.")
	existing := &corev1.Namespace{}
	if err := d.c.Get(ctx, client.ObjectKey{Name: project1}, existing); err == nil {
		return fmt.Errorf("namespace %s already exists: the demo needs a fresh cluster; `make demo` starts one", project1)
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading namespace %s: %w", project1, err)
	}
	for _, name := range []string{project1, project2} {
		d.command("kubectl create namespace %s", name)
		err := d.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		d.answer(err, d.warnings.take())
		if err != nil {
			return err
		}
	}
	nginx := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: project2, Name: "nginx"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "nginx"},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(80)}},
		},
	}
	d.command("kubectl apply -f - <<EOF")
	d.object(nginx)
	err := d.c.Create(ctx, nginx)
	d.answer(err, d.warnings.take())
	if err != nil {
		return err
	}
	d.policies(project1, d.list(ctx, project1))
	d.check(len(d.list(ctx, project1)) == 0, "before isolation, %s has no NetworkPolicy: all traffic is allowed", project1)
	return nil
}

// enableIsolation labels demo-project-1.
func (d *demo) enableIsolation(ctx context.Context) error {
	d.section("Enable network isolation on demo-project-1",
		`Guide: "When network isolation is turned on, egress traffic will be allowed by`,
		`default, while ingress traffic will be denied for different projects."`,
		"With moat, a project admin turns isolation on by labelling the namespace.")
	d.command("kubectl label namespace %s %s=true", project1, moatv1alpha1.IsolationLabel)
	if err := d.setIsolation(ctx, "true"); err != nil {
		return err
	}
	// Read right after the request returned: moat's mutating webhook writes
	// the default policy during admission.
	nps := d.list(ctx, project1)
	d.policies(project1, nps)
	ingress := find(nps, policy.DefaultIngressPolicyName)
	d.check(ingress != nil && policy.IsManaged(ingress),
		"%s exists as soon as the labelling request returns", policy.DefaultIngressPolicyName)
	if ingress != nil {
		rules := ingress.Spec.Ingress
		d.check(equality.Semantic.DeepEqual(ingress.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) &&
			len(ingress.Spec.PodSelector.MatchLabels) == 0 && len(rules) == 1 && len(rules[0].From) > 0 &&
			equality.Semantic.DeepEqual(rules[0].From[0], networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}),
			"it selects every pod and admits traffic from the same project")
		d.check(!admitsNamespace(ingress, project2), "it does not admit traffic from %s (a different project)", project2)
		if len(rules) == 1 && len(rules[0].From) > 1 {
			d.note("(the other sources are moat's --allowed-ingress-namespaces and --allowed-ingress-cidrs,")
			d.note(" e.g. the monitoring system of the guide's FAQ)")
		}
	}
	d.check(find(nps, policy.DefaultEgressPolicyName) == nil, "egress stays open: there is no %s policy yet", policy.DefaultEgressPolicyName)
	return nil
}

// internalIngress is "Allow ingress traffic from workloads in a different project".
func (d *demo) internalIngress(ctx context.Context) error {
	d.section("Allow ingress from workloads in demo-project-2 (internal allowlist)",
		`Guide: "Allow ingress traffic from workloads in a different project": add`,
		"demo-project-2 to the internal allowlist of demo-project-1.")
	al := allowlist("allow-demo-project-2", moatv1alpha1.NetworkAllowlistSpec{
		Ingress: []moatv1alpha1.IngressRule{{From: []moatv1alpha1.Peer{{Namespace: project2}}}},
	})
	return d.applyAllowlist(ctx, al, networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{namespacePeer(project2)}}},
	}, "pods of %s may now connect to every pod of %s", project2, project1)
}

// serviceEgress is "Allow egress traffic to Services in a different project".
func (d *demo) serviceEgress(ctx context.Context) error {
	d.section("Allow egress to the Service nginx in demo-project-2",
		`Guide: "Allow egress traffic to Services in a different project": select the`,
		"project demo-project-2 and the Service nginx. moat turns the Service into its",
		"pods (the Service's selector) and its target ports, which is what a",
		"NetworkPolicy can match. From now on, only allowlisted egress leaves",
		"demo-project-1 (plus DNS, so that names still resolve).")
	al := allowlist("egress-to-nginx", moatv1alpha1.NetworkAllowlistSpec{
		Egress: []moatv1alpha1.EgressRule{{To: []moatv1alpha1.Peer{{Service: &moatv1alpha1.ServiceReference{Namespace: project2, Name: "nginx"}}}}},
	})
	err := d.applyAllowlist(ctx, al, networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To:    []networkingv1.NetworkPolicyPeer{{NamespaceSelector: namespacePeer(project2).NamespaceSelector, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nginx"}}}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(80)},
		}},
	}, "pods of %s may now reach the nginx pods of %s on TCP/80", project1, project2)
	if err != nil {
		return err
	}
	closed := d.waitFor(ctx, policyDeadline, func() bool {
		egress := find(d.list(ctx, project1), policy.DefaultEgressPolicyName)
		return egress != nil && len(egress.Spec.Egress) == 2 &&
			equality.Semantic.DeepEqual(egress.Spec.Egress[0].To, []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}) &&
			len(egress.Spec.Egress[1].To) >= 1 && egress.Spec.Egress[1].To[0].NamespaceSelector != nil &&
			egress.Spec.Egress[1].To[0].NamespaceSelector.MatchLabels[moatv1alpha1.NamespaceNameLabel] == policy.DefaultDNSService.Namespace
	})
	d.check(closed,
		"within %v %s closes egress, except to the same project and to the cluster DNS in %s", policyDeadline, policy.DefaultEgressPolicyName, policy.DefaultDNSService.Namespace)
	return nil
}

// externalIngress is "Allow ingress traffic from a client outside the cluster".
func (d *demo) externalIngress(ctx context.Context) error {
	d.section("Allow ingress from the external client 192.168.1.1/32 on TCP 80",
		`Guide: "Allow ingress traffic from a client outside the cluster": network`,
		"segment 192.168.1.1/32, protocol TCP, port 80 (the external allowlist).")
	al := allowlist("external-client", moatv1alpha1.NetworkAllowlistSpec{
		Ingress: []moatv1alpha1.IngressRule{{
			From:  []moatv1alpha1.Peer{{IPBlock: &moatv1alpha1.IPBlock{CIDR: "192.168.1.1/32"}}},
			Ports: []moatv1alpha1.Port{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80))}},
		}},
	})
	return d.applyAllowlist(ctx, al, networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.1.1/32"}}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(80)},
		}},
	}, "192.168.1.1 may now connect to %s on TCP/80", project1)
}

// externalEgress is "Allow egress traffic to Services outside the cluster".
func (d *demo) externalEgress(ctx context.Context) error {
	d.section("Allow egress to the external service 10.1.0.1/32 on TCP 80",
		`Guide: "Allow egress traffic to Services outside the cluster": network`,
		"segment 10.1.0.1/32, protocol TCP, port 80.")
	al := allowlist("external-service", moatv1alpha1.NetworkAllowlistSpec{
		Egress: []moatv1alpha1.EgressRule{{
			To:    []moatv1alpha1.Peer{{IPBlock: &moatv1alpha1.IPBlock{CIDR: "10.1.0.1/32"}}},
			Ports: []moatv1alpha1.Port{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80))}},
		}},
	})
	return d.applyAllowlist(ctx, al, networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.1/32"}}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(80)},
		}},
	}, "pods of %s may now reach 10.1.0.1 on TCP/80", project1)
}

// selectorlessService is the guide's note "When creating a Service, you must
// make sure that the selectors of the Service are not empty."
func (d *demo) selectorlessService(ctx context.Context) error {
	d.section("A Service without a selector is rejected",
		`Guide: "When creating a Service, you must make sure that the selectors of the`,
		`Service are not empty." A NetworkPolicy cannot match the endpoints of such a`,
		"Service, so moat refuses an allowlist that names one, and says why.")
	legacy := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: project2, Name: "legacy-db"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 5432, TargetPort: intstr.FromInt32(5432)}}},
	}
	d.command("kubectl apply -f - <<EOF   # a Service whose endpoints are managed by hand")
	d.object(legacy)
	err := d.c.Create(ctx, legacy)
	d.answer(err, d.warnings.take())
	if err != nil {
		return err
	}
	al := allowlist("egress-to-legacy-db", moatv1alpha1.NetworkAllowlistSpec{
		Egress: []moatv1alpha1.EgressRule{{To: []moatv1alpha1.Peer{{Service: &moatv1alpha1.ServiceReference{Namespace: project2, Name: "legacy-db"}}}}},
	})
	return d.expectRejected(ctx, al, "spec.egress[0].to[0].service")
}

// sctp is the guide's note "when you select SCTP, you must make sure SCTP is
// [enabled]".
func (d *demo) sctp(ctx context.Context) error {
	d.section("SCTP is rejected unless the cluster supports it",
		`Guide: "when you select SCTP, you must make sure SCTP is enabled." moat only`,
		"accepts SCTP when it is started with --sctp-enabled (this cluster is not).")
	al := allowlist("external-sctp", moatv1alpha1.NetworkAllowlistSpec{
		Ingress: []moatv1alpha1.IngressRule{{
			From:  []moatv1alpha1.Peer{{IPBlock: &moatv1alpha1.IPBlock{CIDR: "192.168.1.1/32"}}},
			Ports: []moatv1alpha1.Port{{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(9000))}},
		}},
	})
	return d.expectRejected(ctx, al, "spec.ingress[0].ports[0].protocol")
}

// disableIsolation turns isolation off again.
func (d *demo) disableIsolation(ctx context.Context) error {
	d.section("Disable network isolation",
		`Guide: "When network isolation is turned off, any previously created network`,
		`policies will be deleted as well." moat deletes every NetworkPolicy it`,
		"manages and never one that a user wrote. The allowlists stay (they are the",
		"project's declarations, often kept in git) and report IsolationDisabled.")
	user := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: project1, Name: "web-from-frontend"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}}}},
				Ports: []networkingv1.NetworkPolicyPort{tcp(8080)},
			}},
		},
	}
	d.note("First, a NetworkPolicy that the project admin writes by hand:")
	d.command("kubectl apply -f - <<EOF")
	d.object(user)
	err := d.c.Create(ctx, user)
	d.answer(err, d.warnings.take())
	if err != nil {
		return err
	}

	d.command("kubectl label namespace %s %s=false", project1, moatv1alpha1.IsolationLabel)
	if err := d.setIsolation(ctx, "false"); err != nil {
		return err
	}
	var nps []networkingv1.NetworkPolicy
	gone := d.waitFor(ctx, statusDeadline, func() bool {
		nps = d.list(ctx, project1)
		return len(managed(nps)) == 0
	})
	d.policies(project1, nps)
	d.check(gone, "every NetworkPolicy moat managed in %s is deleted", project1)
	kept := find(nps, user.Name)
	d.check(kept != nil && kept.ResourceVersion == user.ResourceVersion, "the user's NetworkPolicy %s is kept, untouched", user.Name)

	names := []string{"allow-demo-project-2", "egress-to-nginx", "external-client", "external-service"}
	var als []moatv1alpha1.NetworkAllowlist
	reported := d.waitFor(ctx, statusDeadline, func() bool {
		als = d.allowlistsOf(ctx)
		if len(als) != len(names) {
			return false
		}
		for _, al := range als {
			c := meta.FindStatusCondition(al.Status.Conditions, moatv1alpha1.ConditionReady)
			if c == nil || c.Reason != moatv1alpha1.ReasonIsolationDisabled || len(al.Status.Policies) != 0 {
				return false
			}
		}
		return true
	})
	d.allowlists(als)
	d.check(len(als) == len(names), "the %d allowlists are kept", len(names))
	d.check(reported, "each allowlist reports Ready=False, reason IsolationDisabled, and no policies")
	if len(als) > 0 {
		if c := meta.FindStatusCondition(als[0].Status.Conditions, moatv1alpha1.ConditionReady); c != nil {
			d.note("%s says: %s", als[0].Name, c.Message)
		}
	}
	return nil
}

// applyAllowlist creates an allowlist in demo-project-1 and checks that
// moat generates exactly want for it within policyDeadline and reports it
// Ready.
func (d *demo) applyAllowlist(ctx context.Context, al *moatv1alpha1.NetworkAllowlist, want networkingv1.NetworkPolicySpec, meaning string, args ...any) error {
	d.command("kubectl apply -f - <<EOF")
	d.object(al)
	err := d.c.Create(ctx, al)
	d.answer(err, d.warnings.take())
	if !d.check(err == nil, "the server accepts the allowlist") {
		return nil
	}
	name := policy.PolicyName(al.Name)
	var got *networkingv1.NetworkPolicy
	inTime := d.waitFor(ctx, policyDeadline, func() bool {
		got = find(d.list(ctx, project1), name)
		return got != nil && equality.Semantic.DeepEqual(got.Spec, want)
	})
	var status moatv1alpha1.NetworkAllowlistStatus
	ready := d.waitFor(ctx, statusDeadline, func() bool {
		current := &moatv1alpha1.NetworkAllowlist{}
		if err := d.c.Get(ctx, client.ObjectKeyFromObject(al), current); err != nil {
			return false
		}
		status = current.Status
		c := meta.FindStatusCondition(status.Conditions, moatv1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == moatv1alpha1.ReasonApplied &&
			slices.Equal(status.Policies, []string{name}) && status.ObservedGeneration == current.Generation
	})
	// The status is written once the whole namespace has converged, so the
	// table below shows every policy of this step.
	d.policies(project1, d.list(ctx, project1))
	d.check(inTime, "within %v moat generates %s: %s", policyDeadline, name, fmt.Sprintf(meaning, args...))
	if got != nil {
		owned := len(got.OwnerReferences) == 1 && got.OwnerReferences[0].UID == al.UID
		d.check(policy.IsManaged(got) && owned, "%s is labelled %s=%s and owned by the allowlist", name, moatv1alpha1.ManagedByLabel, moatv1alpha1.ManagedByValue)
	}
	d.check(ready, "the allowlist's status says Ready=True (Applied), policies [%s]", name)
	return nil
}

// expectRejected creates the allowlist and checks that the server refuses it
// with a field error at fieldPath, and that nothing is stored or generated.
func (d *demo) expectRejected(ctx context.Context, al *moatv1alpha1.NetworkAllowlist, fieldPath string) error {
	before := d.list(ctx, project1)
	d.command("kubectl apply -f - <<EOF")
	d.object(al)
	err := d.c.Create(ctx, al)
	d.answer(err, d.warnings.take())
	var status apierrors.APIStatus
	named := false
	if errors.As(err, &status) && status.Status().Details != nil {
		for _, cause := range status.Status().Details.Causes {
			if cause.Field == fieldPath {
				named = true
			}
		}
	}
	d.check(apierrors.IsInvalid(err) && named, "the server rejects it, naming the field %s", fieldPath)
	stored := &moatv1alpha1.NetworkAllowlist{}
	getErr := d.c.Get(ctx, client.ObjectKeyFromObject(al), stored)
	d.check(apierrors.IsNotFound(getErr), "nothing is stored")
	after := d.list(ctx, project1)
	d.check(equality.Semantic.DeepEqual(before, after), "the NetworkPolicies of %s are unchanged", project1)
	return nil
}

// setIsolation sets the isolation label of demo-project-1.
func (d *demo) setIsolation(ctx context.Context, value string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns := &corev1.Namespace{}
		if err := d.c.Get(ctx, client.ObjectKey{Name: project1}, ns); err != nil {
			return err
		}
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[moatv1alpha1.IsolationLabel] = value
		return d.c.Update(ctx, ns)
	})
	d.answer(err, d.warnings.take())
	return err
}

// list returns the NetworkPolicies of a namespace, sorted by name.
func (d *demo) list(ctx context.Context, namespace string) []networkingv1.NetworkPolicy {
	var list networkingv1.NetworkPolicyList
	if err := d.c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		d.note("listing NetworkPolicies in %s failed: %v", namespace, err)
		return nil
	}
	slices.SortFunc(list.Items, func(a, b networkingv1.NetworkPolicy) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return list.Items
}

// allowlistsOf returns the allowlists of demo-project-1.
func (d *demo) allowlistsOf(ctx context.Context) []moatv1alpha1.NetworkAllowlist {
	var list moatv1alpha1.NetworkAllowlistList
	if err := d.c.List(ctx, &list, client.InNamespace(project1)); err != nil {
		d.note("listing NetworkAllowlists failed: %v", err)
		return nil
	}
	return list.Items
}

// waitFor polls cond until it holds or timeout passes.
func (d *demo) waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(pollInterval)
	}
}

func allowlist(name string, spec moatv1alpha1.NetworkAllowlistSpec) *moatv1alpha1.NetworkAllowlist {
	return &moatv1alpha1.NetworkAllowlist{
		TypeMeta:   metav1.TypeMeta{APIVersion: moatv1alpha1.GroupVersion.String(), Kind: "NetworkAllowlist"},
		ObjectMeta: metav1.ObjectMeta{Namespace: project1, Name: name},
		Spec:       spec,
	}
}

func find(nps []networkingv1.NetworkPolicy, name string) *networkingv1.NetworkPolicy {
	for i := range nps {
		if nps[i].Name == name {
			return &nps[i]
		}
	}
	return nil
}

func managed(nps []networkingv1.NetworkPolicy) []networkingv1.NetworkPolicy {
	var out []networkingv1.NetworkPolicy
	for _, np := range nps {
		if policy.IsManaged(&np) {
			out = append(out, np)
		}
	}
	return out
}

// admitsNamespace reports whether any ingress peer selects the namespace by name.
func admitsNamespace(np *networkingv1.NetworkPolicy, namespace string) bool {
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.NamespaceSelector != nil && peer.NamespaceSelector.MatchLabels[moatv1alpha1.NamespaceNameLabel] == namespace {
				return true
			}
		}
	}
	return false
}

func namespacePeer(name string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{moatv1alpha1.NamespaceNameLabel: name}}}
}

func tcp(port int32) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(port))}
}
