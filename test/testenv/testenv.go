// Package testenv holds what moat's test suites, local control plane and
// benchmarks share about the repository they run in: where it is, how to
// create the objects of its manifests, and how to install moat's webhook
// configurations against a local webhook server.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"moat.dev/moat/manifest"
)

// RepoRoot walks up from the working directory to the directory whose go.mod
// declares module moat.dev/moat.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declaresMoat(data) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run this inside the moat repository: no go.mod declaring module moat.dev/moat above the working directory")
		}
		dir = parent
	}
}

func declaresMoat(gomod []byte) bool {
	for _, line := range bytes.Split(gomod, []byte("\n")) {
		if string(bytes.TrimSpace(line)) == "module moat.dev/moat" {
			return true
		}
	}
	return false
}

// InstallWebhooks creates moat's webhook configurations from
// <repo>/manifests/webhook with every webhook pointed at baseURL plus the
// webhook's path, trusting caPEM: how a webhook server on 127.0.0.1 is wired
// to a local kube-apiserver.
func InstallWebhooks(ctx context.Context, c client.Client, repo, baseURL string, caPEM []byte) error {
	dir := filepath.Join(repo, "manifests", "webhook")
	var mutating admissionregistrationv1.MutatingWebhookConfiguration
	var validating admissionregistrationv1.ValidatingWebhookConfiguration
	for file, obj := range map[string]any{"mutating-webhook-configuration.yaml": &mutating, "validating-webhook-configuration.yaml": &validating} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		if err := yaml.UnmarshalStrict(data, obj); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	point := func(cc *admissionregistrationv1.WebhookClientConfig) {
		u := baseURL
		if cc.Service != nil && cc.Service.Path != nil {
			u += *cc.Service.Path
		}
		cc.Service, cc.URL, cc.CABundle = nil, &u, caPEM
	}
	for i := range mutating.Webhooks {
		point(&mutating.Webhooks[i].ClientConfig)
	}
	for i := range validating.Webhooks {
		point(&validating.Webhooks[i].ClientConfig)
	}
	if err := c.Create(ctx, &mutating); err != nil {
		return err
	}
	return c.Create(ctx, &validating)
}

// ReadManifests reads the objects of the YAML files of dir (not recursing,
// skipping kustomization.yaml, files in name order) as `kubectl apply -f`
// does, through package manifest's reader.
func ReadManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var (
		objs []*unstructured.Unstructured
		bad  []error
	)
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		err = manifest.ReadUnstructured(file, f,
			func(_ manifest.Position, obj *unstructured.Unstructured) { objs = append(objs, obj) },
			func(e *manifest.Error) { bad = append(bad, e) })
		_ = f.Close()
		if err := errors.Join(append(bad, err)...); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// CreateManifests creates the objects ReadManifests reads from dir, after
// passing each through mutate when it is not nil.
func CreateManifests(ctx context.Context, c client.Client, dir string, mutate func(*unstructured.Unstructured) error) error {
	objs, err := ReadManifests(dir)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		if mutate != nil {
			if err := mutate(obj); err != nil {
				return fmt.Errorf("%s: %s %s: %w", dir, obj.GetKind(), obj.GetName(), err)
			}
		}
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("%s: creating %s %s: %w", dir, obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

// NetworkPolicyAPIModule is the module whose admin-tier APIs moat writes
// (--enforcement); moat's go.mod pins its version (v0.3.0).
const NetworkPolicyAPIModule = "sigs.k8s.io/network-policy-api"

// NetworkPolicyAPIv1alpha1CRDs is the last version of the module that ships
// the AdminNetworkPolicy and BaselineAdminNetworkPolicy CRDs (v1alpha1) as
// YAML. v0.3.0 keeps the v1alpha1 Go types but no CRD, and a CRD generated
// from them is refused by the API server: their CIDR rule (isCIDR and
// masked) at 100 rules × 100 peers × 25 networks exceeds the CEL cost
// budget. v0.1.7's schema is the same but for that rule (isCIDR only); moat
// writes masked CIDRs either way.
const NetworkPolicyAPIv1alpha1CRDs = "v0.1.7"

// NetworkPolicyAPICRDs returns the CRD files of the admin-tier APIs, read
// from the network-policy-api module in the Go module cache (fetched through
// the module proxy when missing), never copied into the repository: the
// ClusterNetworkPolicy CRD (v1beta1, with v1alpha2) of the version in
// go.mod, and the AdminNetworkPolicy and BaselineAdminNetworkPolicy CRDs of
// NetworkPolicyAPIv1alpha1CRDs, all from config/crd/standard.
func NetworkPolicyAPICRDs(repo string) ([]string, error) {
	current, err := moduleDir(repo, NetworkPolicyAPIModule)
	if err != nil {
		return nil, err
	}
	v1alpha1, err := moduleDir(repo, NetworkPolicyAPIModule+"@"+NetworkPolicyAPIv1alpha1CRDs)
	if err != nil {
		return nil, err
	}
	standard := func(dir, resource string) string {
		return filepath.Join(dir, "config", "crd", "standard", "policy.networking.k8s.io_"+resource+".yaml")
	}
	return []string{
		standard(current, "clusternetworkpolicies"),
		standard(v1alpha1, "adminnetworkpolicies"),
		standard(v1alpha1, "baselineadminnetworkpolicies"),
	}, nil
}

// moduleDir returns the directory of module (path or path@version) in the
// module cache, downloading it when missing.
func moduleDir(repo, module string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating module %s: %w", module, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return "", fmt.Errorf("locating module %s: %v %s", module, err, info.Error)
	}
	return info.Dir, nil
}
