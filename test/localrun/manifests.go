package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

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
