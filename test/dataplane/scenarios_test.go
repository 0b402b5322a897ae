//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/controller"
)

// Allowlists, built as a project admin writes them.

func allowlist(ns, name string, spec v1alpha1.NetworkAllowlistSpec) *v1alpha1.NetworkAllowlist {
	return &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

func ports(proto corev1.Protocol, numbers ...int) []v1alpha1.Port {
	var out []v1alpha1.Port
	for _, n := range numbers {
		out = append(out, v1alpha1.Port{Protocol: ptr.To(proto), Port: ptr.To(intstr.FromInt(n))})
	}
	return out
}

func ingressFromNamespace(ns, from string, p ...v1alpha1.Port) *v1alpha1.NetworkAllowlist {
	return allowlist(ns, "from-"+from, v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: from}}, Ports: p}},
	})
}

func (s *suite) create(obj client.Object) func() error {
	return func() error { return s.cluster.Admin.Create(s.ctx, obj) }
}

func (s *suite) delete(obj client.Object) func() error {
	return func() error { return s.cluster.Admin.Delete(s.ctx, obj) }
}

// setPorts changes the ports of the allowlist's first ingress rule (on the
// stored object: moat writes its status in between).
func (s *suite) setPorts(al *v1alpha1.NetworkAllowlist, p ...v1alpha1.Port) func() error {
	return func() error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := s.cluster.Admin.Get(s.ctx, client.ObjectKeyFromObject(al), al); err != nil {
				return err
			}
			al.Spec.Ingress[0].Ports = p
			return s.cluster.Admin.Update(s.ctx, al)
		})
	}
}

// waitForManagedPolicies waits until moat has written at least n
// NetworkPolicies in ns (the negative control needs them there before it
// shows that nothing enforces them).
func (s *suite) waitForManagedPolicies(ns string, n int) error {
	return wait.PollUntilContextTimeout(s.ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		list := &networkingv1.NetworkPolicyList{}
		if err := s.cluster.Admin.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}); err != nil {
			return false, err
		}
		return len(list.Items) >= n, nil
	})
}

// negativeControl runs the isolated-project matrix before the enforcer
// starts: moat writes its policies, nothing enforces them, and the matrix
// must fail on every cell that expects a denial while every cell that
// expects traffic to pass still passes (the topology itself works).
func (s *suite) negativeControl(t *testing.T) {
	if err := s.isolate(projA, true)(); err != nil {
		t.Fatal(err)
	}
	if err := s.waitForManagedPolicies(projA, 1); err != nil {
		// Not fatal: the matrix below still shows what a data plane
		// without policies does.
		t.Errorf("moat wrote no policy in %s: %v", projA, err)
	}
	cells := s.isolatedCells()
	results := Matrix(s.ctx, cells, time.Now(), negativeDeadline)
	PrintMatrix(os.Stdout, "negative control: proj-a isolated, moat's policies written, NO enforcer (mismatches expected)", results)
	mismatches := Mismatches(results)
	for _, r := range results {
		switch {
		case r.Want && !r.OK():
			t.Errorf("without an enforcer %s must pass (the topology is broken): %s", r.Key(), r.Detail)
		case !r.Want && r.OK():
			t.Errorf("without an enforcer %s was denied: something else filters traffic", r.Key())
		}
	}
	if len(mismatches) == 0 {
		t.Fatal("the matrix passed without an enforcer: the suite cannot tell enforced isolation from none")
	}
	t.Logf("negative control: %d of %d cells mismatched without an enforcer, as they must", len(mismatches), len(results))
	if err := s.isolate(projA, false)(); err != nil {
		t.Fatal(err)
	}
}

// isolatedCells is the matrix of the guide's first scenario: proj-a
// isolated, nothing allowlisted.
func (s *suite) isolatedCells() []Cell {
	return []Cell{
		Deny(s.client, s.tcp(s.web, portHTTP)),
		Deny(s.client, s.tcp(s.web, portAlt)),
		Deny(s.client, s.udp(s.web, portUDP)),
		Deny(s.other, s.tcp(s.web, portHTTP)),
		Deny(s.outside, s.tcp(s.web, portHTTP)),
		Allow(s.db, s.tcp(s.web, portHTTP)),
		Allow(s.db, s.udp(s.web, portUDP)),
		Allow(s.web, s.tcp(s.client, portHTTP)),
		Allow(s.web, s.tcp(s.outside, portHTTP)),
		Allow(s.client, s.tcp(s.other, portHTTP)),
	}
}

func (s *suite) isolatedProject(t *testing.T) {
	s.step(t, "proj-a isolated: other projects and outside hosts are denied; the same project, and egress, pass",
		"isolation label on", s.isolate(projA, true), s.isolatedCells()...)
}

func (s *suite) ingressFromProject(t *testing.T) {
	s.step(t, "proj-a isolated", "", s.isolate(projA, true), s.isolatedCells()...)
	al := ingressFromNamespace(projA, projB, ports(corev1.ProtocolTCP, portHTTP)...)
	s.step(t, "allowlist in proj-a: ingress from proj-b on TCP 80", "allowlist create", s.create(al), s.fromProjBCells()...)
	s.step(t, "allowlist changed: TCP 8080 instead of 80", "allowlist update", s.setPorts(al, ports(corev1.ProtocolTCP, portAlt)...), s.fromProjBAltCells()...)
	s.step(t, "allowlist deleted", "allowlist delete", s.delete(al), s.fromProjBDeletedCells()...)
}

func (s *suite) egressToService(t *testing.T) {
	s.step(t, "proj-a isolated: egress still open", "", s.isolate(projA, true), s.egressOpenCells()...)
	s.step(t, "allowlist in proj-a: egress to Service proj-b/nginx port 80 (target port 8080); other egress is dropped", "allowlist create (egress)", s.create(toNginx()),
		s.toNginxCells()...)
}

func (s *suite) externalCIDR(t *testing.T) {
	s.step(t, "proj-a isolated", "", s.isolate(projA, true), s.isolatedCells()...)
	s.step(t, "allowlist in proj-a: ingress from "+netipPrefix(outsideIP)+" on TCP 80, egress to it on TCP 443", "allowlist create (ipBlock)", s.create(outsideAllowlist()),
		s.outsideCells()...)
}

func (s *suite) dnsOnly(t *testing.T) {
	s.step(t, "proj-a isolated: DNS cache reachable on every port", "", s.isolate(projA, true), s.dnsOpenCells()...)
	s.step(t, "egress restricted in proj-a: the --dns-ips cache only on UDP and TCP 53", "allowlist create (egress)", s.create(toOutsideTLS()),
		s.dnsOnlyCells()...)
}

func (s *suite) isolationOff(t *testing.T) {
	s.step(t, "proj-a isolated", "", s.isolate(projA, true), s.isolatedCells()...)
	al := toOutsideTLS()
	s.step(t, "egress restricted in proj-a", "allowlist create (egress)", s.create(al), s.egressRestrictedCells()...)
	s.step(t, "isolation off on proj-a (label false; the allowlist is kept): everything passes again", "isolation label off", s.isolate(projA, false),
		s.isolationOffCells()...)
	if err := s.cluster.Admin.Get(s.ctx, client.ObjectKeyFromObject(al), al); err != nil {
		t.Errorf("the allowlist must be kept when isolation is turned off: %v", err)
	}
}

func (s *suite) projectGroups(t *testing.T) {
	for ns, group := range groups {
		if err := s.labelNamespace(ns, map[string]*string{projectLabel: ptr.To(group), v1alpha1.IsolationLabel: ptr.To("true")}); err != nil {
			t.Fatal(err)
		}
	}
	s.step(t, "proj-a, proj-b (group ws1) and proj-c (ws2) isolated: the group admits its own", "", nil, s.groupsCells()...)
	s.step(t, "proj-c moved to group ws1", "project label change", func() error {
		return s.labelNamespace(projC, map[string]*string{projectLabel: ptr.To("ws1")})
	}, s.groupMovedCells()...)
}

// tenant is the user who administers proj-a through RBAC: NetworkPolicies
// and NetworkAllowlists in proj-a, nothing else.
const tenant = "tenant-of-proj-a"

// tenantClient binds the tenant's Role in proj-a (once: reset keeps RBAC)
// and returns a client acting as the tenant, whom moat does not trust.
func (s *suite) tenantClient(t *testing.T) client.Client {
	t.Helper()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: projA},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"*"}},
			{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"networkallowlists"}, Verbs: []string{"*"}},
		},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: projA},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tenant"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: tenant}},
	}
	for _, obj := range []client.Object{role, binding} {
		if err := s.cluster.Admin.Create(s.ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	user, err := s.cluster.User(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return user
}

func (s *suite) tenantPolicies(t *testing.T) {
	ctx := s.ctx
	s.step(t, "proj-a isolated", "", s.isolate(projA, true), s.isolatedCells()...)
	user := s.tenantClient(t)
	// A policy that admits proj-c: beyond what moat admits, so refused.
	wide := letProjCIn()
	s.step(t, "tenant's NetworkPolicy admitting proj-c is refused: proj-c stays out", "", func() error {
		err := user.Create(ctx, wide.DeepCopy())
		switch {
		case err == nil:
			t.Errorf("a tenant NetworkPolicy admitting %s into isolated %s was accepted", projC, projA)
		case !refusedAt(err, "spec.ingress[0].from[0].namespaceSelector"):
			t.Errorf("the tenant's NetworkPolicy failed, but not as moat refuses it: %v", err)
		default:
			t.Logf("refused as expected: %v", err)
		}
		return nil
	}, s.wideRefusedCells()...)
	// A policy confined to the namespace: within what moat admits.
	s.step(t, "tenant's NetworkPolicy confined to proj-a is accepted: nothing opens", "", func() error {
		return user.Create(ctx, sameNamespaceWeb())
	}, s.confinedCells()...)
	// The control: the refused policy, written by an admin (whom moat
	// trusts), does open the path; so the refusal above is what kept it shut.
	s.step(t, "control: the same policy written by the cluster admin opens proj-a to proj-c", "tenant-rule control", s.create(wide.DeepCopy()),
		s.wideByAdminCells()...)
}

// eventDeadline bounds how long the controller may take to record an Event
// after the change that calls for it.
const eventDeadline = 10 * time.Second

// laundering is case 2 of issue 20: a tenant justifies a NetworkPolicy
// with an allowlist, then tries to drop the allowlist and keep the policy.
// moat refuses the tenant's delete, naming the policy; an admin's delete is
// admitted and the controller reports the stranded policy (never deletes
// it), so the data plane still admits the peer until someone removes it.
// The policy selects proj-a/web only: proj-c → proj-a/db shows what the
// allowlist itself opens, so that after the admin's delete web's opening is
// the stranded policy's, not moat's policies lagging behind.
func (s *suite) laundering(t *testing.T) {
	ctx := s.ctx
	s.step(t, "proj-a isolated", "", s.isolate(projA, true), s.isolatedCells()...)
	user := s.tenantClient(t)
	al, np := temporaryFromProjC(), launderedProjC()
	s.step(t, "tenant creates an allowlist admitting proj-c on TCP 80, then a NetworkPolicy for proj-a/web pinned to proj-c on port 80 (admitted: the allowlist justifies it)", "", func() error {
		if err := user.Create(ctx, al); err != nil {
			return fmt.Errorf("the tenant's allowlist: %w", err)
		}
		if err := user.Create(ctx, np); err != nil {
			return fmt.Errorf("the tenant's NetworkPolicy, justified by its allowlist, was refused: %w", err)
		}
		return nil
	}, s.launderedCells()...)
	s.step(t, "tenant deletes the allowlist: refused, naming the policy it would strand; proj-c still admitted, as the allowlist still declares", "", func() error {
		err := user.Delete(ctx, al.DeepCopy())
		switch {
		case err == nil:
			t.Errorf("the tenant deleted the allowlist that NetworkPolicy %s needs", np.Name)
		case !strings.Contains(err.Error(), np.Name):
			t.Errorf("the tenant's delete failed, but the error does not name NetworkPolicy %s: %v", np.Name, err)
		default:
			t.Logf("refused as expected: %v", err)
		}
		return s.cluster.Admin.Get(ctx, client.ObjectKeyFromObject(al), &v1alpha1.NetworkAllowlist{})
	}, s.launderRefusedCells()...)
	s.step(t, "admin deletes the allowlist: admitted; the stranded policy is reported (Event "+controller.EventTenantPolicyBeyondIsolation+"), never deleted, so proj-c still gets into proj-a/web (not into proj-a/db: the allowlist's opening is gone)", "", func() error {
		start := time.Now()
		if err := s.delete(al)(); err != nil {
			return fmt.Errorf("the admin's delete of the allowlist: %w", err)
		}
		event, err := s.waitForEvent(np, controller.EventTenantPolicyBeyondIsolation, eventDeadline)
		if err != nil {
			return fmt.Errorf("no %s Event on NetworkPolicy %s/%s within %s of the admin's delete: %w",
				controller.EventTenantPolicyBeyondIsolation, np.Namespace, np.Name, eventDeadline, err)
		}
		t.Logf("Event on NetworkPolicy %s/%s %s after the delete: %s", np.Namespace, np.Name, time.Since(start).Round(time.Millisecond), event)
		return s.cluster.Admin.Get(ctx, client.ObjectKeyFromObject(np), &networkingv1.NetworkPolicy{})
	}, s.strandedCells()...)
	s.step(t, "clean-up: the stranded NetworkPolicy deleted: proj-c denied again", "", s.delete(np), s.wideRefusedCells()...)
}

// waitForEvent waits until an Event with reason regarding obj (by UID: an
// earlier object of the same name may have Events too) is recorded, and
// returns its note.
func (s *suite) waitForEvent(obj client.Object, reason string, timeout time.Duration) (string, error) {
	var note string
	err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list := &eventsv1.EventList{}
		if err := s.cluster.Admin.List(ctx, list, client.InNamespace(obj.GetNamespace())); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.Reason == reason && e.Regarding.UID == obj.GetUID() {
				note = e.Note
				return true, nil
			}
		}
		return false, nil
	})
	return note, err
}

func (s *suite) ingressFromNodes(t *testing.T) {
	s.step(t, "proj-a isolated, --allow-ingress-from-nodes: the second node gets in, the outside host does not", "", s.isolate(projA, true),
		s.nodesCells()...)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node2Name}}
	s.step(t, "Node "+node2Name+" deleted: its address is no longer admitted", "node delete", s.delete(node), s.nodeDeletedCells()...)
	if err := CreateNode(s.ctx, s.cluster.Admin, node2Name, node2IP); err != nil {
		t.Fatal(err)
	}
	s.step(t, "Node "+node2Name+" back", "node create", nil, s.nodeBackCells()...)
}

// convergenceRounds repeats the changes a project admin makes most, to
// measure how fast the data plane follows each: isolation on and off, and
// an allowlist created, changed and deleted. DATAPLANE_ROUNDS overrides the
// number of rounds.
func (s *suite) convergenceRounds(t *testing.T) {
	rounds := 8
	if v, err := strconv.Atoi(os.Getenv("DATAPLANE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	httpIn := Allow(s.client, s.tcp(s.web, portHTTP))
	altIn := Allow(s.client, s.tcp(s.web, portAlt))
	deny := func(c Cell) Cell { c.Want = false; return c }
	for i := range rounds {
		s.step(t, "round "+strconv.Itoa(i+1)+": isolation on", "isolation label on", s.isolate(projA, true), deny(httpIn), deny(altIn))
		al := ingressFromNamespace(projA, projB, ports(corev1.ProtocolTCP, portHTTP)...)
		s.step(t, "round "+strconv.Itoa(i+1)+": allowlist created (TCP 80)", "allowlist create", s.create(al), httpIn, deny(altIn))
		s.step(t, "round "+strconv.Itoa(i+1)+": allowlist changed (TCP 8080)", "allowlist update", s.setPorts(al, ports(corev1.ProtocolTCP, portAlt)...), deny(httpIn), altIn)
		s.step(t, "round "+strconv.Itoa(i+1)+": allowlist deleted", "allowlist delete", s.delete(al), deny(httpIn), deny(altIn))
		s.step(t, "round "+strconv.Itoa(i+1)+": isolation off", "isolation label off", s.isolate(projA, false), httpIn, altIn)
		if t.Failed() {
			return
		}
	}
}

// refusedAt reports whether err is an Invalid answer (moat's validating
// webhook refusing the object) with a cause at field.
func refusedAt(err error, field string) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsInvalid(err) || status.Status().Details == nil {
		return false
	}
	for _, cause := range status.Status().Details.Causes {
		if cause.Field == field {
			return true
		}
	}
	return false
}

// netipPrefix is the /32 of an address, as an allowlist writes it.
func netipPrefix(a interface{ String() string }) string { return a.String() + "/32" }
