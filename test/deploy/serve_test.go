package deploy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"moat.dev/moat/certs"
	"moat.dev/moat/controller"
)

// withFlag returns args with --name set to value, replacing an existing
// --name=... or appending it.
func withFlag(args []string, name, value string) []string {
	out := make([]string, 0, len(args)+1)
	found := false
	for _, a := range args {
		if strings.HasPrefix(a, "--"+name+"=") || a == "--"+name {
			if !found {
				out = append(out, "--"+name+"="+value)
				found = true
			}
			continue
		}
		out = append(out, a)
	}
	if !found {
		out = append(out, "--"+name+"="+value)
	}
	return out
}

// serviceAccountToken creates a ServiceAccount in namespace and returns a
// token for it from the TokenRequest API.
func serviceAccountToken(namespace, name string) string {
	GinkgoHelper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo[int64](3600)}}
	Expect(k8sClient.SubResource("token").Create(ctx, sa, tr)).To(Succeed())
	Expect(tr.Status.Token).NotTo(BeEmpty())
	return tr.Status.Token
}

func ptrTo[T any](v T) *T { return &v }

// The Deployment's container, run as a local process with the identity and
// rights of moat's ServiceAccount: proves that the RBAC in the render is
// enough for `moat serve` to start, elect a leader, isolate a namespace,
// record Events and authorize metrics scrapers.
var _ = Describe("moat serve with the Deployment's arguments and moat's ServiceAccount", Ordered, func() {
	var (
		servingCert *certs.KeyPair
		healthAddr  string
		metricsAddr string
		// moatBinary and moatArgs start the process under test.
		moatBinary string
		moatArgs   []string
	)

	BeforeAll(func() {
		var deployment appsOfMoat
		deployment.load()
		moat := deployment.container

		tmp := GinkgoT().TempDir()
		By("building bin/moat into a temporary directory")
		binary := filepath.Join(tmp, "moat")
		build := exec.Command("go", "build", "-o", binary, "./cmd/moat")
		build.Dir = repoRoot
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "go build ./cmd/moat: %s", out)

		By("writing a serving certificate where the Secret volume would be")
		certDir := filepath.Join(tmp, "serving-certs")
		ca, err := certs.NewCA(certs.CAOptions{})
		Expect(err).NotTo(HaveOccurred())
		servingCert, err = ca.Issue(certs.ServingOptions{DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
		Expect(err).NotTo(HaveOccurred())
		Expect(certs.Write(certDir, ca, servingCert)).To(Succeed())

		By("authenticating as moat's ServiceAccount")
		user, err := testEnv.AddUser(envtest.User{Name: moatUser, Groups: moatGroups}, nil)
		Expect(err).NotTo(HaveOccurred())
		kubeconfig, err := user.KubeConfig()
		Expect(err).NotTo(HaveOccurred())
		kubeconfigPath := filepath.Join(tmp, "kubeconfig")
		Expect(os.WriteFile(kubeconfigPath, kubeconfig, 0o600)).To(Succeed())

		// The Deployment's arguments, with addresses a local process can
		// bind and the two things the pod gets from its environment: the
		// API server connection and (for leader election) its namespace.
		healthAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort()))
		metricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort()))
		args := moat.Args
		args = withFlag(args, "cert-dir", certDir)
		args = withFlag(args, "webhook-host", "127.0.0.1")
		args = withFlag(args, "webhook-port", strconv.Itoa(freePort()))
		args = withFlag(args, "health-probe-bind-address", healthAddr)
		args = withFlag(args, "metrics-bind-address", metricsAddr)
		args = withFlag(args, "kubeconfig", kubeconfigPath)
		args = withFlag(args, "leader-election-namespace", systemNamespace)

		moatBinary, moatArgs = binary, args
		By("starting moat " + strings.Join(args, " "))
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "POD_NAMESPACE="+systemNamespace)
		cmd.Stdout = GinkgoWriter
		cmd.Stderr = GinkgoWriter
		Expect(cmd.Start()).To(Succeed())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		DeferCleanup(func() {
			Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
			Eventually(exited).WithTimeout(time.Minute).Should(Receive(BeNil()), "moat serve exits cleanly on SIGTERM")
		})

		Eventually(func() (int, error) {
			select {
			case err := <-exited:
				return 0, StopTrying(fmt.Sprintf("moat serve exited: %v", err))
			default:
			}
			resp, err := http.Get("http://" + healthAddr + "/readyz")
			if err != nil {
				return 0, err
			}
			_ = resp.Body.Close()
			return resp.StatusCode, nil
		}).WithTimeout(time.Minute).Should(Equal(http.StatusOK), "/readyz")
	})

	It("refuses to start when its webhook configuration is routed on another project label than --project-label", func() {
		// The rendered manifests route kubesphere.io/workspace changes to
		// moat; with Rancher's label, changes of it would never reach moat.
		args := withFlag(moatArgs, "project-label", "field.cattle.io/projectId")
		args = withFlag(args, "health-probe-bind-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort())))
		args = withFlag(args, "metrics-bind-address", "0")
		args = withFlag(args, "webhook-port", strconv.Itoa(freePort()))
		cmd := exec.Command(moatBinary, args...)
		cmd.Env = append(os.Environ(), "POD_NAMESPACE="+systemNamespace)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		Eventually(done).WithTimeout(time.Minute).Should(BeClosed())
		Expect(err).To(HaveOccurred(), "moat serve started: %s", out)
		Expect(string(out)).To(ContainSubstring("project-label.namespaces.moat.dev is routed on another label than --project-label=field.cattle.io/projectId"))
	})

	It("becomes leader through its Lease in moat-system", func() {
		Eventually(func(g Gomega) {
			var lease coordinationv1.Lease
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: "moat.dev"}, &lease)).To(Succeed())
			g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
			g.Expect(*lease.Spec.HolderIdentity).NotTo(BeEmpty())
		}).WithTimeout(time.Minute).Should(Succeed())
	})

	It("isolates a labelled namespace and records an Event about it", func() {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "project-"}}
		Expect(k8sClient.Create(ctx, ns)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, ns)).To(Succeed()) })
		// The mutating webhook's Service has no endpoints here, and its
		// failurePolicy is Ignore: the controller does the work.
		patch := client.MergeFrom(ns.DeepCopy())
		ns.Labels = map[string]string{"moat.dev/isolated": "true"}
		Expect(k8sClient.Patch(ctx, ns, patch)).To(Succeed())

		Eventually(func(g Gomega) {
			var policies networkingv1.NetworkPolicyList
			g.Expect(k8sClient.List(ctx, &policies, client.InNamespace(ns.Name),
				client.MatchingLabels{"app.kubernetes.io/managed-by": "moat"})).To(Succeed())
			g.Expect(policies.Items).NotTo(BeEmpty())
		}).WithTimeout(time.Minute).Should(Succeed())
		// Events about a cluster-scoped object live in the default namespace.
		Eventually(func(g Gomega) {
			var events eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &events)).To(Succeed())
			g.Expect(events.Items).To(ContainElement(And(
				HaveField("Regarding.Kind", "Namespace"),
				HaveField("Regarding.Name", ns.Name),
				HaveField("Reason", controller.EventIsolationEnabled))))
		}).WithTimeout(time.Minute).Should(Succeed())
	})

	It("serves metrics, with the serving certificate's expiry, to authorized scrapers only", func() {
		monitoring := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "monitoring-"}}
		Expect(k8sClient.Create(ctx, monitoring)).To(Succeed())
		reader := serviceAccountToken(monitoring.Name, "prometheus")
		stranger := serviceAccountToken(monitoring.Name, "stranger")
		Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "moat-metrics-reader-"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "moat-metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: monitoring.Name, Name: "prometheus"}},
		})).To(Succeed())

		// The metrics server presents a self-signed certificate.
		httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed metrics certificate
		}}
		// scrape reports a transport error instead of failing: the metrics
		// listener may bind a moment after /readyz answers.
		scrape := func(token string) (int, string, error) {
			req, err := http.NewRequest(http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
			if err != nil {
				return 0, "", err
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer func() { _ = resp.Body.Close() }()
			body, err := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body), err
		}
		status := func(token string) func() (int, error) {
			return func() (int, error) {
				code, _, err := scrape(token)
				return code, err
			}
		}

		Eventually(status("")).WithTimeout(time.Minute).Should(Equal(http.StatusUnauthorized))
		Expect(status(stranger)()).To(Equal(http.StatusForbidden))
		// The API server's authorizer sees a new ClusterRoleBinding after
		// its informer does, and the metrics filter caches a denial for
		// 30 s: the reader may need a retry past that.
		var body string
		Eventually(func() (int, error) {
			code, b, err := scrape(reader)
			body = b
			return code, err
		}).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(Equal(http.StatusOK))
		Expect(strings.Split(body, "\n")).To(ContainElement(
			fmt.Sprintf("%s %s", certs.ExpiryMetricName, strconv.FormatFloat(float64(servingCert.Cert.NotAfter.Unix()), 'e', -1, 64))))
	})
})
