package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/certs"
	"moat.dev/moat/webhook"
)

// webhookClientKubeconfig is the kubeconfig the API server reads (through
// its admission configuration) to authenticate to webhook servers: the
// user "*" applies to every webhook. docs/operations.md shows the same.
const webhookClientKubeconfig = `apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate-data: %s
    client-key-data: %s
`

// admissionConfiguration points both webhook admission plugins at a
// kubeconfig.
const admissionConfiguration = `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]s
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]s
`

// withClientCA makes the API server present a client certificate to
// webhooks (its admission configuration) and returns the hooks and flags
// that make moat serve require one (--webhook-client-ca-name), as
// docs/operations.md describes.
func withClientCA(t *testing.T) (serveHooks, []string) {
	t.Helper()
	ca, err := certs.NewCA(certs.CAOptions{CommonName: "moat webhook client CA"})
	if err != nil {
		t.Fatal(err)
	}
	apiServerCert, err := ca.Issue(certs.ServingOptions{DNSNames: []string{"kube-apiserver"}, ClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "webhook-kubeconfig")
	admission := filepath.Join(dir, "admission.yaml")
	enc := base64.StdEncoding.EncodeToString
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, webhookClientKubeconfig, enc(apiServerCert.CertPEM), enc(apiServerCert.KeyPEM)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(admission, fmt.Appendf(nil, admissionConfiguration, kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}

	return serveHooks{
		apiServer: func(env *envtest.Environment) {
			env.ControlPlane.GetAPIServer().Configure().Set("admission-control-config-file", admission)
		},
		beforeServe: func(env *envtest.Environment) {
			if err := os.WriteFile(filepath.Join(env.WebhookInstallOptions.LocalServingCertDir, "client-ca.crt"), ca.CertPEM, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}, []string{"--webhook-client-ca-name", "client-ca.crt"}
}

// checkClientCA checks, on a moat serve started withClientCA, that the API
// server's calls are answered (isolating kube-system is refused by
// protected-namespaces.moat.dev) and that a client without a certificate,
// any pod that reaches the port, cannot even complete the TLS handshake.
func checkClientCA(t *testing.T, c client.Client, env *envtest.Environment) {
	t.Helper()
	bg := context.Background()
	kubeSystem := &corev1.Namespace{}
	if err := c.Get(bg, client.ObjectKey{Name: "kube-system"}, kubeSystem); err != nil {
		t.Fatal(err)
	}
	kubeSystem.Labels[v1alpha1.IsolationLabel] = "true"
	if err := c.Update(bg, kubeSystem); err == nil || !strings.Contains(err.Error(), `admission webhook "protected-namespaces.moat.dev" denied the request`) {
		t.Errorf("isolating kube-system: error %v, want a denial by protected-namespaces.moat.dev", err)
	}

	wh := env.WebhookInstallOptions
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(wh.LocalServingCAData)
	url := "https://" + net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort)) + webhook.MutateNamespacePath
	anonymous := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := anonymous.Post(url, "application/json", bytes.NewReader([]byte(`{}`)))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got HTTP %d, want a failed TLS handshake", resp.StatusCode)
	}
	if !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("a client without a certificate: %v, want a TLS alert: certificate required", err)
	}
}
