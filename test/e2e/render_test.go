package e2e

import (
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/manifest"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// `moat render` runs offline; this proves that what it prints is something
// the real API server accepts.
var _ = Describe("moat render", func() {
	It("renders only NetworkPolicies that the API server accepts for manifests/samples", func() {
		samples := filepath.Join(repoRoot, "manifests", "samples")
		x, findings, err := manifest.Check([]string{samples}, nil, nil, validation.Config{})
		Expect(err).NotTo(HaveOccurred())
		for _, f := range findings {
			Expect(f.Severity).NotTo(Equal(manifest.SeverityError), "manifests/samples must validate: %+v", f)
		}
		dns := policy.DefaultDNSService
		out, _, err := manifest.Render(x, policy.Config{
			AllowedIngressNamespaces: []string{"monitoring", "ingress-nginx"},
			AllowedIngressCIDRs:      []string{"192.168.0.0/16", "2001:db8::/64"},
			DNSService:               &dns,
		})
		Expect(err).NotTo(HaveOccurred())
		policies := out.Policies
		Expect(policies).NotTo(BeEmpty())

		// Every policy goes to a fresh namespace of its own name, so that
		// nothing else in the suite sees these names.
		namespaces := map[string]string{}
		for i := range policies {
			rendered := policies[i]
			ns, ok := namespaces[rendered.Namespace]
			if !ok {
				ns = createNamespace(nil).Name
				namespaces[rendered.Namespace] = ns
			}
			By("dry-run creating " + rendered.Namespace + "/" + rendered.Name)
			obj := rendered.DeepCopy()
			obj.Namespace = ns
			Expect(k8sClient.Create(ctx, obj, client.DryRunAll)).To(Succeed(), "rendered %s/%s", rendered.Namespace, rendered.Name)
			// The server neither rejected nor changed anything: moat renders
			// policies in the API server's canonical form.
			Expect(obj.Spec).To(Equal(rendered.Spec), "the API server changed the spec of %s/%s", rendered.Namespace, rendered.Name)
			Expect(obj.Labels).To(Equal(rendered.Labels))

			var stored networkingv1.NetworkPolicyList
			Expect(k8sClient.List(ctx, &stored, client.InNamespace(ns))).To(Succeed())
			Expect(stored.Items).To(BeEmpty(), "a dry-run must store nothing")
		}
	})
})
