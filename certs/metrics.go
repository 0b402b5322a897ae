package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// ExpiryMetricName is the name of the gauge that holds the expiry of the
// serving certificate the webhook server presents, in seconds since the Unix
// epoch (the certificate's NotAfter). Alert when it comes within days of
// time(): cert-manager renews well before that, so an approaching expiry
// means renewal or reloading is broken.
const ExpiryMetricName = "moat_webhook_certificate_expiry_timestamp_seconds"

var (
	expiryGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: ExpiryMetricName,
		Help: "Expiry (NotAfter, seconds since the Unix epoch) of the TLS certificate the webhook server currently serves.",
	})
	registerExpiry sync.Once
)

// NewServingWatcher loads certName and keyName from certDir and returns a
// controller-runtime CertWatcher for them that keeps the expiry gauge
// (ExpiryMetricName, on controller-runtime's metrics registry) equal to the
// NotAfter of the certificate it serves, from now on and after every reload.
// Run it with the manager (mgr.Add) and serve with its GetCertificate:
//
//	w, err := certs.NewServingWatcher(certDir, certs.TLSCertFile, certs.TLSKeyFile)
//	...
//	webhook.Options{TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = w.GetCertificate }}}
//	mgr.Add(w)
//
// It returns an error naming the files when they cannot be read or do not
// hold a matching certificate and key.
func NewServingWatcher(certDir, certName, keyName string) (*certwatcher.CertWatcher, error) {
	certPath := filepath.Join(certDir, certName)
	keyPath := filepath.Join(certDir, keyName)
	w, err := certwatcher.New(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("loading the webhook serving certificate %s and key %s (set --cert-dir to the directory holding %s and %s): %w",
			certPath, keyPath, certName, keyName, err)
	}
	ObserveExpiry(w)
	return w, nil
}

// ObserveExpiry registers the expiry gauge on controller-runtime's metrics
// registry (once per process) and makes w keep it current: it is set from
// the certificate w holds now and again whenever w loads a new one. It takes
// w's only callback slot.
func ObserveExpiry(w *certwatcher.CertWatcher) {
	registerExpiry.Do(func() { metrics.Registry.MustRegister(expiryGauge) })
	w.RegisterCallback(recordExpiry)
}

// recordExpiry sets the gauge to the NotAfter of cert's leaf certificate.
// A certificate that does not parse leaves the gauge unchanged (the TLS stack
// has already refused it).
func recordExpiry(cert tls.Certificate) {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return
		}
		parsed, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return
		}
		leaf = parsed
	}
	expiryGauge.Set(float64(leaf.NotAfter.Unix()))
}
