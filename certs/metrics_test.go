package certs

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// gatheredExpiry returns the expiry gauge as controller-runtime's metrics
// registry exports it.
func gatheredExpiry(t *testing.T) (float64, bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() == ExpiryMetricName {
			if len(f.GetMetric()) != 1 {
				t.Fatalf("%s has %d series, want 1", ExpiryMetricName, len(f.GetMetric()))
			}
			return f.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestNewServingWatcherExportsExpiry(t *testing.T) {
	ca := newTestCA(t)
	kp, err := ca.Issue(ServingOptions{
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Validity:    36 * time.Hour,
		Now:         func() time.Time { return fixedNow },
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	dir := t.TempDir()
	if err := Write(dir, ca, kp); err != nil {
		t.Fatalf("Write: %v", err)
	}
	w, err := NewServingWatcher(dir, TLSCertFile, TLSKeyFile)
	if err != nil {
		t.Fatalf("NewServingWatcher: %v", err)
	}
	got, ok := gatheredExpiry(t)
	if !ok {
		t.Fatalf("%s is not registered", ExpiryMetricName)
	}
	want := float64(fixedNow.Truncate(time.Second).Add(36 * time.Hour).Unix())
	if got != want {
		t.Errorf("%s = %v, want %v (the certificate's NotAfter)", ExpiryMetricName, got, want)
	}
	served, err := w.GetCertificate(nil)
	if err != nil || served == nil || !served.Leaf.Equal(kp.Cert) {
		t.Errorf("GetCertificate = %v, %v; want the written certificate", served, err)
	}
}

func TestNewServingWatcherNamesMissingFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	_, err := NewServingWatcher(dir, TLSCertFile, TLSKeyFile)
	if err == nil {
		t.Fatal("NewServingWatcher on a missing directory succeeded")
	}
	for _, want := range []string{filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile), "--cert-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestNewServingWatcherRejectsMismatchedKey(t *testing.T) {
	ca := newTestCA(t)
	opts := ServingOptions{DNSNames: []string{"localhost"}, Now: func() time.Time { return fixedNow }}
	a, err := ca.Issue(opts)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	b, err := ca.Issue(opts)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TLSCertFile), a.CertPEM, CertMode); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, TLSKeyFile), b.KeyPEM, KeyMode); err != nil {
		t.Fatal(err)
	}
	_, err = NewServingWatcher(dir, TLSCertFile, TLSKeyFile)
	if err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Errorf("NewServingWatcher with a mismatched key: error %v, want one saying the key does not match", err)
	}
}
