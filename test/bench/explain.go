package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// explainTarget is the target for a live explain (issue 24).
const explainTarget = 1 * time.Second

func explainNamespace(i int) string { return fmt.Sprintf("explain-%04d", i) }

// explainPodIP is the address of pod j of namespace i: 10.(i/250).(i%250).(j+1)
// under 10.0.0.0/8, unique for up to 62,500 namespaces of 254 pods.
func explainPodIP(i, j int) string {
	return netip.AddrFrom4([4]byte{10, byte(i / 250), byte(i % 250), byte(j + 1)}).String()
}

// benchExplain fills a real kube-apiserver with -explain-namespaces
// namespaces of -explain-pods pods each (every other namespace isolated,
// with an allowlist admitting the next namespace on TCP 8080 and moat's
// policies as moat serve writes them, plus a tenant policy), then times the
// real `bin/moat explain --kubeconfig` process, -runs times per question:
// pod to pod, and address to pod (the API server finds the pod by
// status.podIP among all pods). Baseline: `kubectl get pods,networkpolicies`
// of one namespace, the least a user reads to answer by hand.
func benchExplain(ctx context.Context, o *options) error {
	c, err := startCluster(o, "explain")
	defer c.stop()
	if err != nil {
		return err
	}
	kubeconfig, err := c.adminKubeconfig()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := parallel(ctx, o.workers, o.explainNamespaces, func(i int) error { return explainWorld(ctx, c.admin, o, i) }); err != nil {
		return fmt.Errorf("creating the cluster: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: explain: %d namespaces, %d pods created in %s\n", o.explainNamespaces, o.explainNamespaces*o.explainPods, time.Since(start).Round(time.Second))

	// Namespace 1 admits namespace 2 (isolated, odd) on 8080; 3 does not.
	questions := []struct {
		name     string
		args     []string
		allowed  bool
		mustName string
	}{
		{"pod → pod (allowlist)", []string{explainNamespace(2) + "/pod-3", explainNamespace(1) + "/pod-5:8080"}, true, "allowlist from-next"},
		{"address → pod (denied, with the fix)", []string{explainPodIP(3, 7), explainNamespace(1) + "/app=web:8080"}, false, "fix: the destination project " + explainNamespace(1)},
	}
	for _, q := range questions {
		var walls []time.Duration
		for range o.runs {
			wall, err := runExplain(ctx, o, kubeconfig, q.args, q.allowed, q.mustName)
			if err != nil {
				return err
			}
			walls = append(walls, wall)
		}
		m := median(walls)
		record(figure{section: "explain", name: fmt.Sprintf("%s, %d namespaces, %d pods (wall, process)", q.name, o.explainNamespaces, o.explainNamespaces*o.explainPods),
			value: msf(m) + " (" + spread(walls, msf) + ")", target: "< " + explainTarget.String(), met: met(m < explainTarget)})
	}
	var base []time.Duration
	for range o.runs {
		cmd := exec.CommandContext(ctx, filepath.Join(o.binDir, "kubectl"), "--kubeconfig", kubeconfig, "get", "pods,networkpolicies", "-n", explainNamespace(1))
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl get: %v: %s", err, out)
		}
		base = append(base, time.Since(t0))
	}
	record(figure{section: "explain", name: "baseline: kubectl get pods,networkpolicies -n NS (wall, process)", value: msf(median(base)) + " (" + spread(base, msf) + ")"})
	return nil
}

// runExplain runs bin/moat explain once and checks its verdict and reason.
func runExplain(ctx context.Context, o *options, kubeconfig string, args []string, allowed bool, mustName string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, o.moat, append([]string{"explain", "--kubeconfig", kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	var exit *exec.ExitError
	switch {
	case allowed && err != nil, !allowed && (!errors.As(err, &exit) || exit.ExitCode() != 1):
		return 0, fmt.Errorf("moat explain %s: %v (want allowed %v); stderr: %s; stdout: %s", strings.Join(args, " "), err, allowed, stderr.String(), stdout.String())
	case !strings.Contains(stdout.String(), mustName):
		return 0, fmt.Errorf("moat explain %s does not say %q:\n%s", strings.Join(args, " "), mustName, stdout.String())
	}
	return wall, nil
}

// explainWorld creates namespace i: its pods (with their addresses), and
// when i is odd its isolation, an allowlist admitting namespace i+1 on TCP
// 8080, moat's policies for them and a tenant policy.
func explainWorld(ctx context.Context, c client.Client, o *options, i int) error {
	name := explainNamespace(i)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.NamespaceNameLabel: name}}}
	objs := []client.Object{ns}
	if i%2 == 1 {
		ns.Labels[v1alpha1.IsolationLabel] = "true"
		al := &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "from-next"}, Spec: v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: explainNamespace(i + 1)}},
				Ports: []v1alpha1.Port{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(8080))}}}},
		}}
		res, err := policy.Render(policy.Input{Namespace: ns, Allowlists: []*v1alpha1.NetworkAllowlist{al}}, nil, policy.Config{})
		if err != nil {
			return err
		}
		objs = append(objs, al)
		for j := range res.Policies {
			objs = append(objs, &res.Policies[j])
		}
		tenant := res.Policies[0].DeepCopy()
		tenant.Name, tenant.Labels = "tenant-web", nil
		tenant.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
		objs = append(objs, tenant)
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %s %s/%s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	for j := range o.explainPods {
		if err := createPod(ctx, c, name, j, explainPodIP(i, j)); err != nil {
			return err
		}
	}
	return nil
}

// createPod creates pod j of a namespace, with its address in its status
// as a kubelet would set it.
func createPod(ctx context.Context, c client.Client, namespace string, j int, ip string) error {
	app := []string{"web", "db", "api"}[j%3]
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("pod-%d", j), Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "app",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating Pod %s/%s: %w", namespace, pod.Name, err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	return c.Status().Update(ctx, pod)
}
