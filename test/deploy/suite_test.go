package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"moat.dev/moat/test/testenv"
)

// certManagerModule is the cert-manager release whose CRDs (the module's
// deploy/crds) are installed before moat's manifests are applied.
const certManagerModule = "github.com/cert-manager/cert-manager@v1.21.2"

var (
	// ctx is cancelled when the suite ends.
	ctx context.Context
	// cfg is the admin rest.Config of the control plane.
	cfg *rest.Config
	// k8sClient talks to the API server directly (no cache) as cluster admin.
	k8sClient client.Client
	// scheme knows the Kubernetes built-in types and CRDs.
	scheme *runtime.Scheme
	// testEnv is the running control plane.
	testEnv *envtest.Environment
	// repoRoot is the directory holding moat's go.mod.
	repoRoot string

	cancelSuite context.CancelFunc
)

func TestDeploy(t *testing.T) {
	RegisterFailHandler(Fail)
	suiteConfig, reporterConfig := GinkgoConfiguration()
	// Let Ginkgo time out before `go test` kills the binary, so that
	// AfterSuite still stops kube-apiserver and etcd.
	if deadline, ok := t.Deadline(); ok {
		if budget := time.Until(deadline) - 30*time.Second; budget > 0 && budget < suiteConfig.Timeout {
			suiteConfig.Timeout = budget
		}
	}
	RunSpecs(t, "moat deployment suite", suiteConfig, reporterConfig)
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancelSuite = context.WithCancel(context.Background())
	DeferCleanup(func() { cancelSuite() })

	var err error
	repoRoot, err = testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())

	scheme = runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	SetDefaultEventuallyTimeout(30 * time.Second)

	binDir := filepath.Join(repoRoot, "bin")
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		_, err := os.Stat(filepath.Join(binDir, name))
		Expect(err).NotTo(HaveOccurred(), "bin/%s is missing: run `make control-plane` first", name)
	}

	By("downloading " + certManagerModule + " for its CRDs")
	crdDir, err := certManagerCRDDir()
	Expect(err).NotTo(HaveOccurred())

	testEnv = &envtest.Environment{
		Scheme:                scheme,
		BinaryAssetsDirectory: binDir,
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
	}
	// SubjectAccessReviews below ask the RBAC authorizer; pin it in case
	// envtest's defaults change.
	testEnv.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")

	DeferCleanup(func() {
		By("stopping the control plane")
		Expect(testEnv.Stop()).To(Succeed())
	})
	By("starting kube-apiserver and etcd from bin/")
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	Expect(testEnv.CRDs).To(HaveLen(6), "cert-manager's deploy/crds holds six CRDs")

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	installDefault()
})

// certManagerCRDDir downloads certManagerModule into the module cache (a
// no-op once it is there) and returns its deploy/crds directory. The module
// is not a dependency of moat; `go mod download` fetches it by version.
func certManagerCRDDir() (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", certManagerModule)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	var info struct {
		Dir   string
		Error string
	}
	if jsonErr := json.Unmarshal(out, &info); jsonErr != nil {
		return "", fmt.Errorf("go mod download %s: %v (output %q, decoding: %v)", certManagerModule, err, out, jsonErr)
	}
	if info.Error != "" || err != nil {
		return "", fmt.Errorf("go mod download %s: %v %s", certManagerModule, err, info.Error)
	}
	dir := filepath.Join(info.Dir, "deploy", "crds")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("%s has no deploy/crds: %w", certManagerModule, err)
	}
	return dir, nil
}

// warningRecorder collects the warnings the API server sends back, such as
// Pod Security's "would violate PodSecurity".
type warningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

// HandleWarningHeaderWithContext implements rest.WarningHandlerWithContext.
func (r *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, text)
}

// Warnings returns the warnings recorded so far.
func (r *warningRecorder) Warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.warnings...)
}

// recordingClient returns an admin client whose API server warnings are
// collected by the returned recorder.
func recordingClient() (client.Client, *warningRecorder) {
	GinkgoHelper()
	rec := &warningRecorder{}
	c := rest.CopyConfig(cfg)
	c.WarningHandler = nil
	c.WarningHandlerWithContext = rec
	cl, err := client.New(c, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return cl, rec
}
