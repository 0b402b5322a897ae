package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
	"moat.dev/moat/policy"
)

// convergence is what converging one namespace starts from: its
// allowlists, what policy.Render makes of them, the live policies and the
// writes that would make them agree.
type convergence struct {
	allowlists []*v1alpha1.NetworkAllowlist
	model      policy.Model
	rendered   policy.Result
	live       map[string]*networkingv1.NetworkPolicy
	plan       changes
}

// converge reads the allowlists of ns, renders its policies with ns as
// given (during admission: as it is about to be stored) and plans the writes
// against the live policies. The reconciler and admission (ApplyNamespace)
// both start here, so they write identical policies.
func (r *Reconciler) converge(ctx context.Context, ns *corev1.Namespace) (*convergence, error) {
	cluster := lookup.New(r.client).Session(ctx)
	allowlists, err := cluster.Allowlists(ns.Name)
	if err != nil {
		return nil, err
	}
	in := policy.Input{Namespace: ns, Allowlists: allowlists}
	if err := r.clusterFacts(ctx, &in); err != nil {
		return nil, err
	}
	model, err := policy.Compute(in, cluster, r.cfg)
	if err != nil {
		return nil, fmt.Errorf("rendering the policies of namespace %s: %w", ns.Name, err)
	}
	rendered := model.Render()
	live, err := r.livePolicies(ctx, ns.Name)
	if err != nil {
		return nil, err
	}
	p, err := r.plan(ctx, rendered.Policies, live)
	if err != nil {
		return nil, err
	}
	if len(p.apply)+len(p.delete)+len(p.conflicts) > 0 {
		logf.FromContext(ctx).V(1).Info("converging", "namespace", ns.Name, "isolated", v1alpha1.Isolated(ns),
			"apply", names(p.apply), "delete", len(p.delete), "conflicts", p.conflicts)
	}
	return &convergence{allowlists: allowlists, model: model, rendered: rendered, live: live, plan: p}, nil
}

// managed counts the rendered policies that moat holds: neither taken by a
// user policy nor missing after a failed write.
func (c *convergence) managed(failed map[string]error) int {
	n := 0
	for _, np := range c.rendered.Policies {
		if !slices.Contains(c.plan.conflicts, np.Name) && (failed[np.Name] == nil || c.live[np.Name] != nil) {
			n++
		}
	}
	return n
}

// maxParallelApplies bounds the server-side applies of one namespace that
// are in flight at once (a namespace needs two or three policies; more come
// with many allowlists).
const maxParallelApplies = 4

// livePolicies returns every NetworkPolicy of the namespace in the cache by
// name.
func (r *Reconciler) livePolicies(ctx context.Context, namespace string) (map[string]*networkingv1.NetworkPolicy, error) {
	return listPolicies(ctx, r.client, namespace)
}

// listPolicies returns every NetworkPolicy of the namespace that reader
// holds, by name.
func listPolicies(ctx context.Context, reader client.Reader, namespace string) (map[string]*networkingv1.NetworkPolicy, error) {
	list := &networkingv1.NetworkPolicyList{}
	if err := reader.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing NetworkPolicies in namespace %s: %w", namespace, err)
	}
	out := make(map[string]*networkingv1.NetworkPolicy, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// changes is what a reconcile must write.
type changes struct {
	// apply holds the desired policies that are missing or out of date.
	apply []networkingv1.NetworkPolicy
	// delete holds the managed policies that are no longer desired.
	delete []*networkingv1.NetworkPolicy
	// conflicts names desired policies whose name a policy without moat's
	// label already has; moat leaves those alone.
	conflicts []string
}

// plan compares the desired policies with the live ones of the namespace
// (from the cache, which may hold only the policies moat manages). Each
// desired policy missing from the cache is read from the API server, all of
// them at once, before anything is written: a user's policy of the same name
// is a conflict and is left alone, and a managed one the cache has not seen
// yet is written only if it differs. They are read with a GET each rather
// than one List of the namespace: the API server reads a GET from etcd at
// once, while it serves a consistent List from its watch cache only after
// that cache has caught up with etcd, which on a quiet cluster takes tens of
// milliseconds and sits in the labelling request's latency.
func (r *Reconciler) plan(ctx context.Context, desired []networkingv1.NetworkPolicy, live map[string]*networkingv1.NetworkPolicy) (changes, error) {
	c := diff(desired, live)
	var missing []int
	for i, np := range c.apply {
		if live[np.Name] == nil {
			missing = append(missing, i)
		}
	}
	stored := make([]*networkingv1.NetworkPolicy, len(c.apply))
	errs := make([]error, len(c.apply))
	var wg sync.WaitGroup
	for _, i := range missing {
		wg.Go(func() {
			np := &networkingv1.NetworkPolicy{}
			err := r.apiReader.Get(ctx, client.ObjectKey{Namespace: c.apply[i].Namespace, Name: c.apply[i].Name}, np)
			switch {
			case err == nil:
				stored[i] = np
			case !apierrors.IsNotFound(err):
				errs[i] = fmt.Errorf("reading NetworkPolicy %s/%s: %w", c.apply[i].Namespace, c.apply[i].Name, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return changes{}, err
	}
	apply := c.apply[:0:0]
	for i, np := range c.apply {
		current := stored[i]
		switch {
		case live[np.Name] != nil || current == nil:
			apply = append(apply, np)
		case !policy.IsManaged(current):
			c.conflicts = append(c.conflicts, np.Name)
		case !upToDate(&np, current):
			apply = append(apply, np)
		}
	}
	c.apply = apply
	slices.Sort(c.conflicts)
	return c, nil
}

// diff compares the desired policies with the live ones of the namespace.
func diff(desired []networkingv1.NetworkPolicy, live map[string]*networkingv1.NetworkPolicy) changes {
	var c changes
	wanted := make(map[string]bool, len(desired))
	for _, np := range desired {
		wanted[np.Name] = true
		current := live[np.Name]
		switch {
		case current == nil:
			c.apply = append(c.apply, np)
		case !policy.IsManaged(current):
			c.conflicts = append(c.conflicts, np.Name)
		case !upToDate(&np, current):
			c.apply = append(c.apply, np)
		}
	}
	names := make([]string, 0, len(live))
	for name := range live {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if np := live[name]; !wanted[name] && policy.IsManaged(np) && np.DeletionTimestamp == nil {
			c.delete = append(c.delete, np)
		}
	}
	return c
}

// isAllowlistPolicy reports whether name is generated from an allowlist
// (rather than being a default policy of the namespace).
func isAllowlistPolicy(rendered policy.Result, name string) bool {
	for _, ar := range rendered.Allowlists {
		if slices.Contains(ar.Policies, name) {
			return true
		}
	}
	return false
}
