package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var fixedNow = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA(CAOptions{Validity: 48 * time.Hour, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func servingOptions() ServingOptions {
	return ServingOptions{
		DNSNames:    []string{"localhost", "moat-webhook.moat-system.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		Validity:    24 * time.Hour,
		Now:         func() time.Time { return fixedNow },
	}
}

func pool(ca *CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func TestIssueVerifiesForEverySAN(t *testing.T) {
	ca := newTestCA(t)
	kp, err := ca.Issue(servingOptions())
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	for _, name := range []string{"localhost", "moat-webhook.moat-system.svc", "127.0.0.1", "::1"} {
		_, err := kp.Cert.Verify(x509.VerifyOptions{
			DNSName:     name,
			Roots:       pool(ca),
			CurrentTime: fixedNow,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("Verify for %q: %v", name, err)
		}
	}
	for _, name := range []string{"example.com", "10.0.0.1", "moat-webhook.moat-system"} {
		_, err := kp.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool(ca), CurrentTime: fixedNow})
		if _, ok := err.(x509.HostnameError); !ok {
			t.Errorf("Verify for %q: got %v, want a HostnameError", name, err)
		}
	}
	// Another CA's certificate must not verify against this CA.
	other := newTestCA(t)
	if _, err := kp.Cert.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool(other), CurrentTime: fixedNow}); err == nil {
		t.Error("certificate verified against an unrelated CA")
	}
}

func TestIssueKeyUsage(t *testing.T) {
	ca := newTestCA(t)
	kp, err := ca.Issue(servingOptions())
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if kp.Cert.IsCA {
		t.Error("serving certificate is a CA")
	}
	if got, want := kp.Cert.KeyUsage, x509.KeyUsageDigitalSignature; got != want {
		t.Errorf("KeyUsage = %v, want %v", got, want)
	}
	if got, want := kp.Cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}; !reflect.DeepEqual(got, want) {
		t.Errorf("ExtKeyUsage = %v, want %v", got, want)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{
		DNSName: "localhost", Roots: pool(ca), CurrentTime: fixedNow,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err == nil {
		t.Error("serving certificate verified for client auth")
	}
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA=%v MaxPathLenZero=%v KeyUsage=%v, want a CA that may sign certificates only",
			ca.Cert.IsCA, ca.Cert.MaxPathLenZero, ca.Cert.KeyUsage)
	}
	if got, want := kp.Cert.PublicKeyAlgorithm, x509.ECDSA; got != want {
		t.Errorf("PublicKeyAlgorithm = %v, want %v", got, want)
	}
	if got, want := kp.Cert.DNSNames, servingOptions().DNSNames; !reflect.DeepEqual(got, want) {
		t.Errorf("DNSNames = %v, want %v", got, want)
	}
	var ips []string
	for _, ip := range kp.Cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"127.0.0.1", "::1"}; !reflect.DeepEqual(ips, want) {
		t.Errorf("IPAddresses = %v, want %v", ips, want)
	}
}

func TestValidity(t *testing.T) {
	ca := newTestCA(t)
	kp, err := ca.Issue(servingOptions())
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	start := fixedNow.Truncate(time.Second)
	if got, want := kp.Cert.NotBefore, start.Add(-ClockSkew); !got.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", got, want)
	}
	if got, want := kp.Cert.NotAfter, start.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	verifyAt := func(at time.Time) error {
		_, err := kp.Cert.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool(ca), CurrentTime: at})
		return err
	}
	if err := verifyAt(start.Add(24*time.Hour - time.Second)); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
	for _, at := range []time.Time{start.Add(24*time.Hour + time.Second), start.Add(-ClockSkew - time.Second)} {
		var invalid x509.CertificateInvalidError
		if err := verifyAt(at); !asInvalid(err, &invalid) || invalid.Reason != x509.Expired {
			t.Errorf("at %v: got %v, want an Expired CertificateInvalidError", at, err)
		}
	}

	// A serving certificate never outlives its CA.
	long := servingOptions()
	long.Validity = 1000 * time.Hour
	kp, err = ca.Issue(long)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if got, want := kp.Cert.NotAfter, ca.Cert.NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want the CA's %v", got, want)
	}

	// Zero means the default.
	def := servingOptions()
	def.Validity = 0
	ca2, err := NewCA(CAOptions{Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	kp, err = ca2.Issue(def)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if got, want := kp.Cert.NotAfter, start.Add(DefaultValidity); !got.Equal(want) {
		t.Errorf("default NotAfter = %v, want %v", got, want)
	}
}

func asInvalid(err error, target *x509.CertificateInvalidError) bool {
	e, ok := err.(x509.CertificateInvalidError)
	if ok {
		*target = e
	}
	return ok
}

func TestBadOptions(t *testing.T) {
	ca := newTestCA(t)
	cases := map[string]struct {
		opts ServingOptions
		want string
	}{
		"no names": {
			opts: ServingOptions{},
			want: "ServingOptions: at least one of DNSNames or IPAddresses is required (e.g. DNSNames: localhost, IPAddresses: 127.0.0.1)",
		},
		"bad DNS name": {
			opts: ServingOptions{DNSNames: []string{"localhost", "Not_A_Name"}},
			want: `ServingOptions.DNSNames[1] "Not_A_Name" is not a DNS name: a lowercase RFC 1123 subdomain must consist of`,
		},
		"bad IP": {
			opts: ServingOptions{IPAddresses: []net.IP{{1, 2, 3}}},
			want: "ServingOptions.IPAddresses[0] is not an IPv4 or IPv6 address",
		},
		"negative validity": {
			opts: ServingOptions{DNSNames: []string{"localhost"}, Validity: -time.Hour},
			want: "ServingOptions.Validity must be positive, got -1h0m0s",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kp, err := ca.Issue(tc.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Issue: got (%v, %v), want error starting with %q", kp, err, tc.want)
			}
		})
	}
	if _, err := NewCA(CAOptions{Validity: -time.Second}); err == nil || err.Error() != "CAOptions.Validity must be positive, got -1s" {
		t.Errorf("NewCA with negative validity: got %v", err)
	}
}

func TestWrite(t *testing.T) {
	ca := newTestCA(t)
	kp, err := ca.Issue(servingOptions())
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "serving-certs")
	if err := Write(dir, ca, kp); err != nil {
		t.Fatalf("Write: %v", err)
	}
	wantModes := map[string]os.FileMode{CAFile: 0o644, TLSCertFile: 0o644, TLSKeyFile: 0o600}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	gotModes := map[string]os.FileMode{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		gotModes[e.Name()] = info.Mode()
	}
	if !reflect.DeepEqual(gotModes, wantModes) {
		t.Errorf("files and modes = %v, want %v (no temporary files left)", gotModes, wantModes)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.Mode(), os.ModeDir|0o700; got != want {
		t.Errorf("directory mode = %v, want %v", got, want)
	}

	// What is on disk is exactly what was issued, and loads as a TLS key pair.
	for name, want := range map[string][]byte{CAFile: ca.CertPEM, TLSCertFile: kp.CertPEM, TLSKeyFile: kp.KeyPEM} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what was issued", name)
		}
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile))
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, CAFile))
	block, _ := pem.Decode(caPEM)
	caCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("ca.crt: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: roots, CurrentTime: fixedNow}); err != nil {
		t.Errorf("tls.crt does not verify against ca.crt: %v", err)
	}
}

func TestRotation(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	first, err := ca.Issue(servingOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, ca, first); err != nil {
		t.Fatal(err)
	}
	second, err := ca.Issue(servingOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, ca, second); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile))
	if err != nil {
		t.Fatalf("LoadX509KeyPair after rotation: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Errorf("serial on disk = %v, want the second certificate's %v", leaf.SerialNumber, second.Cert.SerialNumber)
	}
	if leaf.SerialNumber.Cmp(first.Cert.SerialNumber) == 0 {
		t.Error("rotation kept the serial number")
	}
	if bytes.Equal(first.KeyPEM, second.KeyPEM) {
		t.Error("rotation kept the private key")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool(ca), CurrentTime: fixedNow}); err != nil {
		t.Errorf("rotated certificate does not verify against the unchanged CA: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("directory holds %d entries after rotation, want 3", len(entries))
	}
}

func TestWriteEmptyDir(t *testing.T) {
	ca := newTestCA(t)
	kp, err := ca.Issue(servingOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := Write("", ca, kp); err == nil || err.Error() != "certificate directory must not be empty" {
		t.Errorf("Write(\"\"): got %v", err)
	}
}
