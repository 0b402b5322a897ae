package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"moat.dev/moat/manifest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// createManifests creates every object in the YAML files of dir (not
// recursing, skipping kustomization.yaml), after passing each through mutate
// when it is not nil.
func createManifests(ctx context.Context, c client.Client, dir string, mutate func(*unstructured.Unstructured) error) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		objs, err := readObjects(file)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			if mutate != nil {
				if err := mutate(obj); err != nil {
					return fmt.Errorf("%s: %s %s: %w", file, obj.GetKind(), obj.GetName(), err)
				}
			}
			if err := c.Create(ctx, obj); err != nil {
				return fmt.Errorf("%s: creating %s %s: %w", file, obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	return nil
}

// readObjects reads file as `kubectl apply -f` does (manifest's reader).
func readObjects(file string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var (
		objs []*unstructured.Unstructured
		bad  []error
	)
	err = manifest.ReadUnstructured(file, f,
		func(_ manifest.Position, obj *unstructured.Unstructured) { objs = append(objs, obj) },
		func(e *manifest.Error) { bad = append(bad, e) })
	return objs, errors.Join(append(bad, err)...)
}

// pointWebhooksAt rewrites the clientConfig of every webhook in a
// Mutating- or ValidatingWebhookConfiguration from the in-cluster Service to
// baseURL plus the Service path, trusting caPEM. Other objects pass unchanged.
func pointWebhooksAt(u *unstructured.Unstructured, baseURL string, caPEM []byte) error {
	var configs []*admissionregistrationv1.WebhookClientConfig
	var obj runtime.Object
	switch u.GetKind() {
	case "MutatingWebhookConfiguration":
		m := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, m); err != nil {
			return err
		}
		for i := range m.Webhooks {
			configs = append(configs, &m.Webhooks[i].ClientConfig)
		}
		obj = m
	case "ValidatingWebhookConfiguration":
		v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
			return err
		}
		for i := range v.Webhooks {
			configs = append(configs, &v.Webhooks[i].ClientConfig)
		}
		obj = v
	default:
		return nil
	}
	for _, cc := range configs {
		if cc.Service == nil || cc.Service.Path == nil {
			return errors.New("every webhook must name a Service and a path in its clientConfig")
		}
		url := baseURL + *cc.Service.Path
		cc.URL, cc.Service, cc.CABundle = &url, nil, caPEM
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u.Object = content
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeFile writes data to path (mode 0600, parents 0700): kubeconfigs hold
// client keys.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
