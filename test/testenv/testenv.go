// Package testenv holds what moat's test suites, local control plane and
// benchmarks share about the repository they run in: where it is, how to
// create the objects of its manifests, and how to install moat's webhook
// configurations against a local webhook server.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
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
