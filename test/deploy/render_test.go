package deploy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Names fixed by the manifests (DESIGN §2 and §6).
const (
	systemNamespace    = "moat-system"
	deploymentName     = "moat"
	serviceAccountName = "moat"
	webhookServiceName = "moat-webhook-service"
	servingCertName    = "moat-serving-cert"
	mutatingConfigName = "moat-mutating-webhook-configuration"
	validatingConfig   = "moat-validating-webhook-configuration"
	injectCAAnnotation = "cert-manager.io/inject-ca-from"
	fieldOwner         = "moat-deploy-test"
)

var certificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// renderDefault builds manifests/default with kustomize's Go API, exactly as
// `kubectl apply -k manifests/default` does.
func renderDefault() []*unstructured.Unstructured {
	GinkgoHelper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot, "manifests", "default"))
	Expect(err).NotTo(HaveOccurred(), "kustomize build manifests/default")
	var objs []*unstructured.Unstructured
	for _, node := range resMap.ToRNodeSlice() {
		data, err := node.MarshalJSON()
		Expect(err).NotTo(HaveOccurred())
		u := &unstructured.Unstructured{}
		Expect(u.UnmarshalJSON(data)).To(Succeed())
		objs = append(objs, u)
	}
	return objs
}

// describe names an object as kind/namespace/name for failure messages.
func describe(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetKind() + "/" + u.GetName()
	}
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// applyAll server-side applies objs with cl the way kubectl does for an
// install: CRDs first (waiting until they are established), then
// Namespaces, then everything else.
func applyAll(cl client.Client, objs []*unstructured.Unstructured) {
	GinkgoHelper()
	rank := func(u *unstructured.Unstructured) int {
		switch u.GetKind() {
		case "CustomResourceDefinition":
			return 0
		case "Namespace":
			return 1
		}
		return 2
	}
	ordered := slices.Clone(objs)
	slices.SortStableFunc(ordered, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })
	for _, u := range ordered {
		Expect(cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()),
			client.FieldOwner(fieldOwner), client.ForceOwnership)).To(Succeed(), "applying %s", describe(u))
		if u.GetKind() == "CustomResourceDefinition" {
			Eventually(func(g Gomega) {
				var crd apiextensionsv1.CustomResourceDefinition
				g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: u.GetName()}, &crd)).To(Succeed())
				g.Expect(crd.Status.Conditions).To(ContainElement(And(
					HaveField("Type", apiextensionsv1.Established),
					HaveField("Status", apiextensionsv1.ConditionTrue))))
			}).Should(Succeed(), "CRD %s established", u.GetName())
		}
	}
}

// portOf returns the port number of a Go listen address such as ":8081" or
// "0.0.0.0:9443".
func portOf(addr string) int32 {
	GinkgoHelper()
	i := strings.LastIndex(addr, ":")
	Expect(i).To(BeNumerically(">=", 0), "address %q has no port", addr)
	p, err := strconv.ParseInt(addr[i+1:], 10, 32)
	Expect(err).NotTo(HaveOccurred(), "address %q", addr)
	return int32(p)
}

// flagValue returns the value of --name=value in args and whether it is
// there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// containerPort returns the number of the named port of container c.
func containerPort(c corev1.Container, name string) int32 {
	GinkgoHelper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	Fail(fmt.Sprintf("container %s has no port named %q (ports: %v)", c.Name, name, c.Ports))
	return 0
}

// rendered is manifests/default as kustomize builds it, and applyWarnings
// the warnings the API server returned while it was applied. installDefault
// sets both once, in BeforeSuite.
var (
	rendered      []*unstructured.Unstructured
	applyWarnings []string
)

// installDefault renders manifests/default and applies it, as an admin who
// runs `kubectl apply -k manifests/default` on a cluster with cert-manager.
func installDefault() {
	GinkgoHelper()
	By("rendering manifests/default with krusty")
	rendered = renderDefault()
	By("applying the render to the API server")
	cl, rec := recordingClient()
	applyAll(cl, rendered)
	applyWarnings = rec.Warnings()
}

var _ = Describe("manifests/default", func() {
	var deployment appsv1.Deployment

	BeforeEach(func() {
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: deploymentName}, &deployment)).To(Succeed())
	})

	It("renders exactly moat's objects, all in moat-system or cluster-scoped", func() {
		var names []string
		for _, u := range rendered {
			names = append(names, describe(u))
		}
		Expect(names).To(ConsistOf(
			"Namespace/moat-system",
			"CustomResourceDefinition/networkallowlists.moat.dev",
			"ServiceAccount/moat-system/moat",
			"ClusterRole/moat",
			"ClusterRole/moat-networkallowlist-editor",
			"ClusterRole/moat-networkallowlist-viewer",
			"ClusterRole/moat-metrics-reader",
			"ClusterRole/moat-isolation-toggle",
			"ValidatingAdmissionPolicy/moat-isolation-toggle",
			"ValidatingAdmissionPolicyBinding/moat-isolation-toggle",
			"ClusterRoleBinding/moat",
			"Role/moat-system/moat-leader-election",
			"RoleBinding/moat-system/moat-leader-election",
			"Deployment/moat-system/moat",
			"PodDisruptionBudget/moat-system/moat",
			"Service/moat-system/moat-metrics-service",
			"Service/moat-system/moat-webhook-service",
			"Issuer/moat-system/moat-selfsigned-issuer",
			"Issuer/moat-system/moat-ca-issuer",
			"Certificate/moat-system/moat-ca",
			"Certificate/moat-system/moat-serving-cert",
			"MutatingWebhookConfiguration/moat-mutating-webhook-configuration",
			"ValidatingWebhookConfiguration/moat-validating-webhook-configuration",
		))
	})

	It("is accepted and stored by the API server, object by object, without warnings", func() {
		for _, u := range rendered {
			stored := &unstructured.Unstructured{}
			stored.SetGroupVersionKind(u.GroupVersionKind())
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), stored)).To(Succeed(), "reading back %s", describe(u))
			Expect(stored.GetManagedFields()).To(ContainElement(HaveField("Manager", fieldOwner)), "%s is managed by the apply", describe(u))
			Expect(stored.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/part-of", "moat"), describe(u))
		}
		Expect(applyWarnings).To(BeEmpty())
	})

	It("issues the serving Certificate for the webhook Service's DNS names", func() {
		cert := &unstructured.Unstructured{}
		cert.SetGroupVersionKind(certificateGVK)
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: servingCertName}, cert)).To(Succeed())
		dnsNames, _, err := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		Expect(err).NotTo(HaveOccurred())
		Expect(dnsNames).To(Equal([]string{
			"moat-webhook-service.moat-system.svc",
			"moat-webhook-service.moat-system.svc.cluster.local",
		}))
		var svc corev1.Service
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: webhookServiceName}, &svc)).To(Succeed())
	})

	It("has cainjector fill both webhook configurations from that Certificate", func() {
		var mutating admissionregistrationv1.MutatingWebhookConfiguration
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: mutatingConfigName}, &mutating)).To(Succeed())
		Expect(mutating.Annotations).To(HaveKeyWithValue(injectCAAnnotation, "moat-system/moat-serving-cert"))
		var validating admissionregistrationv1.ValidatingWebhookConfiguration
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: validatingConfig}, &validating)).To(Succeed())
		Expect(validating.Annotations).To(HaveKeyWithValue(injectCAAnnotation, "moat-system/moat-serving-cert"))

		var certs, configs int
		for _, u := range rendered {
			switch u.GetKind() {
			case "Certificate":
				certs++
			case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
				configs++
				Expect(u.GetAnnotations()).To(HaveKeyWithValue(injectCAAnnotation, "moat-system/moat-serving-cert"), describe(u))
			}
		}
		Expect(configs).To(Equal(2))
		Expect(certs).To(Equal(2), "the CA and the serving certificate")
	})

	It("sends every webhook to the webhook Service, which reaches moat's webhook port", func() {
		var svc corev1.Service
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: webhookServiceName}, &svc)).To(Succeed())
		Expect(labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(deployment.Spec.Template.Labels))).To(BeTrue(),
			"Service selector %v selects the pods %v", svc.Spec.Selector, deployment.Spec.Template.Labels)
		Expect(svc.Spec.Selector).NotTo(BeEmpty())

		moat := deployment.Spec.Template.Spec.Containers[0]
		webhookPort, ok := flagValue(moat.Args, "webhook-port")
		Expect(ok).To(BeTrue(), "args %v set --webhook-port", moat.Args)
		servicePorts := map[int32]intstr.IntOrString{}
		for _, p := range svc.Spec.Ports {
			servicePorts[p.Port] = p.TargetPort
		}

		var clients []admissionregistrationv1.WebhookClientConfig
		var mutating admissionregistrationv1.MutatingWebhookConfiguration
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: mutatingConfigName}, &mutating)).To(Succeed())
		for _, w := range mutating.Webhooks {
			clients = append(clients, w.ClientConfig)
		}
		var validating admissionregistrationv1.ValidatingWebhookConfiguration
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: validatingConfig}, &validating)).To(Succeed())
		for _, w := range validating.Webhooks {
			clients = append(clients, w.ClientConfig)
		}
		Expect(clients).NotTo(BeEmpty())
		for _, cc := range clients {
			Expect(cc.URL).To(BeNil())
			Expect(cc.Service).NotTo(BeNil())
			Expect(cc.Service.Namespace).To(Equal(systemNamespace))
			Expect(cc.Service.Name).To(Equal(webhookServiceName))
			port := ptr.Deref(cc.Service.Port, 443)
			Expect(servicePorts).To(HaveKey(port), "Service %s has port %d", webhookServiceName, port)
			target := servicePorts[port]
			if target.Type == intstr.String {
				Expect(strconv.Itoa(int(containerPort(moat, target.StrVal)))).To(Equal(webhookPort))
			} else {
				Expect(strconv.Itoa(target.IntValue())).To(Equal(webhookPort))
			}
		}
	})

	It("mounts the serving certificate's Secret read-only at --cert-dir", func() {
		cert := &unstructured.Unstructured{}
		cert.SetGroupVersionKind(certificateGVK)
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: servingCertName}, cert)).To(Succeed())
		secretName, _, err := unstructured.NestedString(cert.Object, "spec", "secretName")
		Expect(err).NotTo(HaveOccurred())

		moat := deployment.Spec.Template.Spec.Containers[0]
		certDir, ok := flagValue(moat.Args, "cert-dir")
		Expect(ok).To(BeTrue(), "args %v set --cert-dir", moat.Args)
		var volumeName string
		for _, m := range moat.VolumeMounts {
			if m.MountPath == certDir {
				Expect(m.ReadOnly).To(BeTrue())
				volumeName = m.Name
			}
		}
		Expect(volumeName).NotTo(BeEmpty(), "a volume is mounted at %s", certDir)
		Expect(deployment.Spec.Template.Spec.Volumes).To(ContainElement(And(
			HaveField("Name", volumeName),
			HaveField("VolumeSource.Secret.SecretName", secretName))))
	})

	It("runs two replicas with leader election, probes on the health port and a PodDisruptionBudget", func() {
		Expect(deployment.Spec.Replicas).To(Equal(ptr.To[int32](2)))
		spec := deployment.Spec.Template.Spec
		Expect(spec.ServiceAccountName).To(Equal(serviceAccountName))
		Expect(spec.Containers).To(HaveLen(1))
		moat := spec.Containers[0]
		Expect(moat.Args).To(ContainElements("serve", "--leader-elect"))

		health, ok := flagValue(moat.Args, "health-probe-bind-address")
		Expect(ok).To(BeTrue(), "args %v set --health-probe-bind-address", moat.Args)
		Expect(moat.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
		Expect(moat.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
		Expect(containerPort(moat, moat.LivenessProbe.HTTPGet.Port.StrVal)).To(Equal(portOf(health)))
		Expect(containerPort(moat, moat.ReadinessProbe.HTTPGet.Port.StrVal)).To(Equal(portOf(health)))

		metrics, ok := flagValue(moat.Args, "metrics-bind-address")
		Expect(ok).To(BeTrue(), "args %v set --metrics-bind-address", moat.Args)
		Expect(containerPort(moat, "metrics")).To(Equal(portOf(metrics)))
		var metricsSvc corev1.Service
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: "moat-metrics-service"}, &metricsSvc)).To(Succeed())
		Expect(metricsSvc.Spec.Ports).To(ConsistOf(HaveField("TargetPort", intstr.FromString("metrics"))))

		Expect(moat.Env).To(ContainElement(corev1.EnvVar{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}))
		Expect(moat.Resources.Requests).To(HaveKey(corev1.ResourceCPU))
		Expect(moat.Resources.Requests).To(HaveKey(corev1.ResourceMemory))
		Expect(moat.Resources.Limits).To(HaveKey(corev1.ResourceMemory))
		Expect(spec.TopologySpreadConstraints).NotTo(BeEmpty())

		var pdb policyv1.PodDisruptionBudget
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: deploymentName}, &pdb)).To(Succeed())
		Expect(pdb.Spec.MinAvailable).To(Equal(ptr.To(intstr.FromInt32(1))))
		selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		Expect(err).NotTo(HaveOccurred())
		Expect(selector.Matches(labels.Set(deployment.Spec.Template.Labels))).To(BeTrue())
	})

	It("never sends requests about kube-system, kube-public, kube-node-lease or moat-system to a webhook, but the one that refuses to isolate them", func() {
		type hook struct {
			name           string
			selector       *metav1.LabelSelector
			objectSelector *metav1.LabelSelector
		}
		var hooks []hook
		var mutating admissionregistrationv1.MutatingWebhookConfiguration
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: mutatingConfigName}, &mutating)).To(Succeed())
		for _, w := range mutating.Webhooks {
			hooks = append(hooks, hook{w.Name, w.NamespaceSelector, w.ObjectSelector})
		}
		var validating admissionregistrationv1.ValidatingWebhookConfiguration
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: validatingConfig}, &validating)).To(Succeed())
		for _, w := range validating.Webhooks {
			hooks = append(hooks, hook{w.Name, w.NamespaceSelector, w.ObjectSelector})
		}
		Expect(hooks).NotTo(BeEmpty())

		// The API server matches namespaceSelector against the namespace's
		// labels (for Namespace objects, their own), so evaluate it against
		// the labels these namespaces really carry.
		const protectedHook = "protected-namespaces.moat.dev"
		for _, name := range []string{"kube-system", "kube-public", "kube-node-lease", systemNamespace} {
			var ns corev1.Namespace
			Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKey{Name: name}, &ns) }).Should(Succeed(), "namespace %s exists", name)
			Expect(ns.Labels).To(HaveKeyWithValue(corev1.LabelMetadataName, name))
			for _, h := range hooks {
				if h.name == protectedHook {
					// It must reach them, and only a request that labels
					// one isolated (which it refuses).
					Expect(h.objectSelector).NotTo(BeNil())
					sel, err := metav1.LabelSelectorAsSelector(h.objectSelector)
					Expect(err).NotTo(HaveOccurred())
					Expect(sel.Matches(labels.Set(ns.Labels))).To(BeFalse(), "%s sees namespace %s as it is", h.name, name)
					isolated := labels.Merge(ns.Labels, labels.Set{"moat.dev/isolated": "true"})
					Expect(sel.Matches(isolated)).To(BeTrue(), "%s sees namespace %s labelled isolated", h.name, name)
					continue
				}
				Expect(h.selector).NotTo(BeNil(), "webhook %s has a namespaceSelector", h.name)
				sel, err := metav1.LabelSelectorAsSelector(h.selector)
				Expect(err).NotTo(HaveOccurred())
				Expect(sel.Matches(labels.Set(ns.Labels))).To(BeFalse(), "webhook %s intercepts namespace %s", h.name, name)
			}
		}
		// An isolated tenant namespace is still matched: the selectors
		// exclude, they do not switch the webhooks off.
		tenant := labels.Set{corev1.LabelMetadataName: "demo-project-1", "moat.dev/isolated": "true"}
		for _, h := range hooks {
			if h.name == protectedHook {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(h.selector)
			Expect(err).NotTo(HaveOccurred())
			Expect(sel.Matches(tenant)).To(BeTrue(), "webhook %s matches tenant namespaces", h.name)
		}
	})

	Context("in a namespace that enforces the restricted Pod Security Standard", func() {
		var ns *corev1.Namespace
		BeforeEach(func() {
			ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "restricted-", Labels: map[string]string{
				"pod-security.kubernetes.io/enforce":         "restricted",
				"pod-security.kubernetes.io/enforce-version": "latest",
			}}}
			Expect(k8sClient.Create(ctx, ns)).To(Succeed())
			DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ns))).To(Succeed()) })
		})

		It("accepts moat's Deployment and its pod without any warning", func() {
			cl, rec := recordingClient()
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: deployment.Name, Labels: deployment.Labels},
				Spec:       *deployment.Spec.DeepCopy(),
			}
			Expect(cl.Create(ctx, d)).To(Succeed())
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "moat", Labels: deployment.Spec.Template.Labels},
				Spec:       *deployment.Spec.Template.Spec.DeepCopy(),
			}
			Expect(cl.Create(ctx, pod)).To(Succeed())
			Expect(rec.Warnings()).To(BeEmpty())
		})

		It("would warn about, and refuse, the same pod allowed to escalate privileges (the check is live)", func() {
			cl, rec := recordingClient()
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: deployment.Name, Labels: deployment.Labels},
				Spec:       *deployment.Spec.DeepCopy(),
			}
			d.Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
			Expect(cl.Create(ctx, d)).To(Succeed())
			Expect(rec.Warnings()).To(ConsistOf(
				`would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "moat" must set securityContext.allowPrivilegeEscalation=false)`))

			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "moat"},
				Spec:       *d.Spec.Template.Spec.DeepCopy(),
			}
			err := cl.Create(ctx, pod)
			Expect(err).To(MatchError(ContainSubstring(`violates PodSecurity "restricted:latest"`)))
		})
	})
})

// appsOfMoat is moat's Deployment as stored, and its one container.
type appsOfMoat struct {
	deployment appsv1.Deployment
	container  corev1.Container
}

// load reads moat's Deployment from the API server.
func (a *appsOfMoat) load() {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: deploymentName}, &a.deployment)).To(Succeed())
	Expect(a.deployment.Spec.Template.Spec.Containers).To(HaveLen(1))
	a.container = a.deployment.Spec.Template.Spec.Containers[0]
}
