// Package certs issues the TLS material that moat's webhook server needs on a
// local control plane and in tests: a private CA and a serving certificate
// signed by it, written as ca.crt, tls.crt and tls.key.
//
// In a real cluster cert-manager issues these; this package is for `make run`
// and the end-to-end suites, where there is no cert-manager.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// File names written by Write. TLSCertFile and TLSKeyFile are the names
// controller-runtime's webhook server loads from its CertDir.
const (
	CAFile      = "ca.crt"
	TLSCertFile = "tls.crt"
	TLSKeyFile  = "tls.key"
)

// ClockSkew is how far before "now" every certificate's validity starts, so
// that a peer whose clock is slightly behind still accepts it.
const ClockSkew = time.Minute

// DefaultValidity is the lifetime used when none is given.
const DefaultValidity = 365 * 24 * time.Hour

// CA is a private certificate authority that signs serving certificates.
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// CertPEM is Cert, PEM encoded: the caBundle of a webhook configuration.
	CertPEM []byte

	key *ecdsa.PrivateKey
}

// CAOptions configures NewCA.
type CAOptions struct {
	// CommonName of the CA; "moat local CA" when empty.
	CommonName string
	// Validity is the CA's lifetime; DefaultValidity when zero.
	Validity time.Duration
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// ServingOptions configures CA.Issue.
type ServingOptions struct {
	// DNSNames are the DNS subject alternative names, e.g.
	// moat-webhook.moat-system.svc or localhost.
	DNSNames []string
	// IPAddresses are the IP subject alternative names, e.g. 127.0.0.1.
	IPAddresses []net.IP
	// Validity is the certificate's lifetime; DefaultValidity when zero. It is
	// capped at the CA's own expiry.
	Validity time.Duration
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// ClientAuth makes the certificate good for client authentication
	// too, e.g. the one the API server presents to a webhook server that
	// requires client certificates (moat serve --webhook-client-ca-name).
	ClientAuth bool
}

// KeyPair is a serving certificate and its private key.
type KeyPair struct {
	// Cert is the parsed serving certificate.
	Cert *x509.Certificate
	// CertPEM is Cert, PEM encoded (tls.crt).
	CertPEM []byte
	// KeyPEM is the PKCS#8 private key, PEM encoded (tls.key).
	KeyPEM []byte
}

// NewCA creates a CA with a fresh ECDSA P-256 key.
func NewCA(opts CAOptions) (*CA, error) {
	validity, err := validityOf(opts.Validity, "CAOptions.Validity")
	if err != nil {
		return nil, err
	}
	name := opts.CommonName
	if name == "" {
		name = "moat local CA"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := window(opts.Now, validity)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	return &CA{Cert: cert, CertPEM: encodeCert(der), key: key}, nil
}

// Issue signs a new serving certificate (server auth only) for the given
// names with a fresh ECDSA P-256 key. Every call returns a new key and serial
// number, so calling it again and writing the result rotates the certificate.
func (ca *CA) Issue(opts ServingOptions) (*KeyPair, error) {
	if len(opts.DNSNames) == 0 && len(opts.IPAddresses) == 0 {
		return nil, errors.New("ServingOptions: at least one of DNSNames or IPAddresses is required (e.g. DNSNames: localhost, IPAddresses: 127.0.0.1)")
	}
	for i, name := range opts.DNSNames {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return nil, fmt.Errorf("ServingOptions.DNSNames[%d] %q is not a DNS name: %s", i, name, strings.Join(errs, "; "))
		}
	}
	for i, ip := range opts.IPAddresses {
		if ip.To4() == nil && ip.To16() == nil {
			return nil, fmt.Errorf("ServingOptions.IPAddresses[%d] is not an IPv4 or IPv6 address", i)
		}
	}
	validity, err := validityOf(opts.Validity, "ServingOptions.Validity")
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating serving key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := window(opts.Now, validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	commonName := ""
	if len(opts.DNSNames) > 0 {
		commonName = opts.DNSNames[0]
	} else {
		commonName = opts.IPAddresses[0].String()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		DNSNames:              append([]string(nil), opts.DNSNames...),
		IPAddresses:           append([]net.IP(nil), opts.IPAddresses...),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if opts.ClientAuth {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing serving certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding serving key: %w", err)
	}
	return &KeyPair{
		Cert:    cert,
		CertPEM: encodeCert(der),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func validityOf(d time.Duration, field string) (time.Duration, error) {
	switch {
	case d == 0:
		return DefaultValidity, nil
	case d < 0:
		return 0, fmt.Errorf("%s must be positive, got %s", field, d)
	}
	return d, nil
}

// window returns the validity period starting now, backdated by ClockSkew.
// X.509 stores whole seconds, so the bounds are truncated to match.
func window(now func() time.Time, validity time.Duration) (time.Time, time.Time) {
	if now == nil {
		now = time.Now
	}
	t := now().UTC().Truncate(time.Second)
	return t.Add(-ClockSkew), t.Add(validity)
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return serial, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
