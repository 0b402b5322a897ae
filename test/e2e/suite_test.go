package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/controller"
	"moat.dev/moat/policy"
	"moat.dev/moat/test/testenv"
	"moat.dev/moat/test/watchdog"
	"moat.dev/moat/validation"
)

// Package-level state shared by every spec. It is set up once in BeforeSuite.
var (
	// ctx is cancelled when the suite ends.
	ctx context.Context
	// k8sClient talks to the API server directly (no cache) as cluster admin,
	// so specs read exactly what is stored.
	k8sClient client.Client
	// cfg is the admin rest.Config of the control plane.
	cfg *rest.Config
	// scheme knows the Kubernetes built-in types and moat's API.
	scheme *runtime.Scheme
	// testEnv is the running control plane.
	testEnv *envtest.Environment
	// repoRoot is the directory holding moat's go.mod.
	repoRoot string

	cancelSuite context.CancelFunc
	mgrMu       sync.Mutex
	mgrStop     context.CancelFunc
	mgrDone     chan error
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	suiteConfig, reporterConfig := GinkgoConfiguration()
	// `go test` kills the test binary when its -timeout expires, which would
	// leave kube-apiserver and etcd running. Let Ginkgo time out first: it
	// interrupts the running spec and still runs AfterSuite.
	if deadline, ok := t.Deadline(); ok {
		if budget := time.Until(deadline) - 30*time.Second; budget > 0 && budget < suiteConfig.Timeout {
			suiteConfig.Timeout = budget
		}
	}
	RunSpecs(t, "moat end-to-end suite", suiteConfig, reporterConfig)
}

var _ = BeforeSuite(func() {
	// Only DESIGN §4's 1-second guarantees are timing requirements, and the
	// specs that check them say so (WithTimeout(guarantee)). Every other wait
	// (status, Events, the webhook's cache catching up) checks an outcome,
	// not a speed: give it room on a loaded machine instead of Gomega's 1 s.
	SetDefaultEventuallyTimeout(30 * time.Second)
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancelSuite = context.WithCancel(context.Background())

	var err error
	repoRoot, err = testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())

	scheme = runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(moatv1alpha1.AddToScheme(scheme))
	utilruntime.Must(controller.AddAdminTierToScheme(scheme))

	// The admin-tier CRDs (--enforcement), from the network-policy-api
	// module, never copied into the repository.
	adminTierCRDs, err := testenv.NetworkPolicyAPICRDs(repoRoot)
	Expect(err).NotTo(HaveOccurred())

	binDir := filepath.Join(repoRoot, "bin")
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		_, err := os.Stat(filepath.Join(binDir, name))
		Expect(err).NotTo(HaveOccurred(), "bin/%s is missing: run `make control-plane` first", name)
	}

	testEnv = &envtest.Environment{
		Scheme:                scheme,
		BinaryAssetsDirectory: binDir,
		CRDDirectoryPaths:     append([]string{filepath.Join(repoRoot, "manifests", "crd", "bases")}, adminTierCRDs...),
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths: webhookManifestPaths(filepath.Join(repoRoot, "manifests", "webhook")),
		},
	}
	// envtest's defaults already run the API server with RBAC authorization
	// (and nothing else); pin it so that specs impersonating tenants keep
	// meaning what they say if those defaults ever change.
	testEnv.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")

	// Stop the control plane whatever happens next, also when Start fails
	// half-way with processes already running.
	DeferCleanup(func() {
		By("stopping the control plane")
		Expect(testEnv.Stop()).To(Succeed())
	})
	By("starting kube-apiserver and etcd from bin/")
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	// Cleanup above needs a live test process; the watchdog also stops
	// etcd and kube-apiserver when this process is killed outright
	// (SIGKILL). Cleanups run last-in first-out: the watchdog is stopped
	// before the control plane.
	pids, err := watchdog.Children(filepath.Join(binDir, "etcd"), filepath.Join(binDir, "kube-apiserver"))
	Expect(err).NotTo(HaveOccurred())
	Expect(pids).To(HaveLen(2), "want the pids of etcd and kube-apiserver")
	guard, err := watchdog.Start(pids)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(guard.Stop)

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	startManager()
})

var _ = AfterSuite(func() {
	stopManager()
	if cancelSuite != nil {
		cancelSuite()
	}
})

// webhookManifestPaths returns dir when it holds at least one YAML file, so the
// suite runs before the webhook configurations exist.
func webhookManifestPaths(dir string) []string {
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		if matches, _ := filepath.Glob(filepath.Join(dir, pattern)); len(matches) > 0 {
			return []string{dir}
		}
	}
	return nil
}

// startManager starts a new controller-runtime manager with everything that
// registerMoat wires into it, serving webhooks where envtest's webhook
// configurations point, and waits until its webhook server and caches are
// ready. Call stopManager before starting it again.
func startManager() {
	GinkgoHelper()
	mgrMu.Lock()
	defer mgrMu.Unlock()
	Expect(mgrStop).To(BeNil(), "startManager called while a manager is running")

	webhookOpts := testEnv.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:    webhookOpts.LocalServingHost,
			Port:    webhookOpts.LocalServingPort,
			CertDir: webhookOpts.LocalServingCertDir,
		}),
		// The same controllers are registered again on every restart.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		// As in `moat serve`: only the NetworkPolicies moat manages are cached.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&networkingv1.NetworkPolicy{}: {Label: labels.SelectorFromSet(policy.ManagedLabels())},
		}},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(registerMoat(mgr)).To(Succeed())
	// Adds the webhook server to the manager even before any webhook is
	// registered, so that readiness below means the same thing either way.
	webhookStarted := mgr.GetWebhookServer().StartedChecker()

	mgrCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		done <- mgr.Start(mgrCtx)
	}()
	mgrStop, mgrDone = stop, done

	Eventually(func() error {
		select {
		case err := <-done:
			// Put it back for stopManager to report.
			done <- err
			return StopTrying(fmt.Sprintf("manager exited early: %v", err))
		default:
		}
		return webhookStarted(nil)
	}).WithTimeout(30 * time.Second).Should(Succeed())
	Expect(mgr.GetCache().WaitForCacheSync(mgrCtx)).To(BeTrue())
}

// restartWithConfig restarts the manager with the suite's configuration
// (defaultWebhookValidation) changed by change, for the rest of the spec:
// its cleanup restarts it with the default again.
func restartWithConfig(change func(*validation.Config)) {
	GinkgoHelper()
	stopManager()
	cfg := defaultWebhookValidation()
	change(&cfg)
	webhookValidation = cfg
	startManager()
	DeferCleanup(func() {
		stopManager()
		webhookValidation = defaultWebhookValidation()
		startManager()
	})
}

// stopManager stops the running manager, if any, and waits until it has
// returned, so that a new one can take over its webhook port.
func stopManager() {
	GinkgoHelper()
	mgrMu.Lock()
	defer mgrMu.Unlock()
	if mgrStop == nil {
		return
	}
	mgrStop()
	done := mgrDone
	mgrStop, mgrDone = nil, nil
	// A manager that hangs on shutdown must not hang the suite (and so keep
	// the control plane running): fail, and let the cleanups stop the rest.
	var err error
	Eventually(done).WithTimeout(time.Minute).Should(Receive(&err), "the manager did not stop")
	Expect(err).NotTo(HaveOccurred(), "manager returned an error")
}
