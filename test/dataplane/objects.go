//go:build linux

package dataplane

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CreateNode creates a Node object whose InternalIPs are ips, in that
// order, as a kubelet would report them (through the status subresource).
func CreateNode(ctx context.Context, c client.Client, name string, ips ...netip.Addr) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(ctx, node); err != nil {
		return fmt.Errorf("creating Node %s: %w", name, err)
	}
	node.Status.Addresses = make([]corev1.NodeAddress, len(ips))
	for i, ip := range ips {
		node.Status.Addresses[i] = corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()}
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if err := c.Status().Update(ctx, node); err != nil {
		return fmt.Errorf("setting the status of Node %s: %w", name, err)
	}
	return nil
}

// CreateNamespace creates a namespace and its default ServiceAccount (no
// controller-manager runs here to create it).
func CreateNamespace(ctx context.Context, c client.Client, name string) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}); err != nil {
		return fmt.Errorf("creating the default ServiceAccount of %s: %w", name, err)
	}
	return nil
}

// CreatePod creates the Pod object of host h, running on nodeName whose
// InternalIP is hostIP, with labels, and sets its status as a kubelet and
// CNI plugin would: podIP, hostIP, phase Running.
func CreatePod(ctx context.Context, c client.Client, namespace, name string, labels map[string]string, nodeName string, hostIP netip.Addr, h *Host) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:                     nodeName,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "app", Image: "moat.dev/dataplane-listener"}},
		},
	}
	if err := c.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating Pod %s/%s: %w", namespace, name, err)
	}
	pod.Status = corev1.PodStatus{
		Phase:   corev1.PodRunning,
		HostIP:  hostIP.String(),
		HostIPs: []corev1.HostIP{{IP: hostIP.String()}},
		PodIP:   h.IP.String(),
		PodIPs:  []corev1.PodIP{{IP: h.IP.String()}},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		},
	}
	if err := c.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("setting the status of Pod %s/%s: %w", namespace, name, err)
	}
	return nil
}
