package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"moat.dev/moat/certs"
)

// certWriter puts a CA and key pair into a certificate directory.
type certWriter func(dir string, ca *certs.CA, kp *certs.KeyPair) error

// secretVolume updates dir the way the kubelet updates a Secret volume
// (its AtomicWriter), which is how cert-manager's renewed certificate
// reaches moat's pods: the files live in a hidden timestamped directory,
// "..data" links to it, each file name links into "..data", and an update
// writes a new directory, swaps "..data" with one rename and removes the
// old directory.
type secretVolume struct {
	current string
}

func (v *secretVolume) write(dir string, ca *certs.CA, kp *certs.KeyPair) error {
	files := map[string][]byte{certs.CAFile: ca.CertPEM, certs.TLSCertFile: kp.CertPEM, certs.TLSKeyFile: kp.KeyPEM}
	ts, err := os.MkdirTemp(dir, "..ts-")
	if err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o440); err != nil {
			return err
		}
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				return err
			}
		}
	}
	if v.current != "" {
		if err := os.RemoveAll(v.current); err != nil {
			return err
		}
	}
	v.current = ts
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort() int {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	port := l.Addr().(*net.TCPAddr).Port
	Expect(l.Close()).To(Succeed())
	return port
}

// expiryMetric returns the value of the certificate expiry gauge as the
// metrics endpoint exports it, or NaN when it is not registered.
func expiryMetric() float64 {
	GinkgoHelper()
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == certs.ExpiryMetricName {
			Expect(f.GetMetric()).To(HaveLen(1))
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return math.NaN()
}

// servedSerial opens a new TLS connection to addr, trusting only pool, and
// returns the serial number of the certificate the server presents.
func servedSerial(addr string, pool *x509.CertPool) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

var _ = Describe("webhook serving certificate rotation", func() {
	DescribeTable("serves the replaced certificate on new handshakes without failing a request",
		func(newWriter func() certWriter, moatWiring bool) {
			write := newWriter()
			dir := filepath.Join(GinkgoT().TempDir(), "serving-certs")
			Expect(os.Mkdir(dir, 0o700)).To(Succeed())
			ca, err := certs.NewCA(certs.CAOptions{})
			Expect(err).NotTo(HaveOccurred())
			issue := func(validity time.Duration) *certs.KeyPair {
				kp, err := ca.Issue(certs.ServingOptions{
					DNSNames:    []string{"localhost"},
					IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
					Validity:    validity,
				})
				Expect(err).NotTo(HaveOccurred())
				return kp
			}
			first := issue(24 * time.Hour)
			Expect(write(dir, ca, first)).To(Succeed())

			srvCtx, stopServer := context.WithCancel(ctx)
			DeferCleanup(stopServer)
			opts := webhook.Options{Host: "127.0.0.1", Port: freePort(), CertDir: dir}
			if moatWiring {
				w, err := certs.NewServingWatcher(dir, certs.TLSCertFile, certs.TLSKeyFile)
				Expect(err).NotTo(HaveOccurred())
				opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = w.GetCertificate }}
				go func() {
					defer GinkgoRecover()
					Expect(w.Start(srvCtx)).To(Succeed())
				}()
				Expect(expiryMetric()).To(Equal(float64(first.Cert.NotAfter.Unix())))
			}
			srv := webhook.NewServer(opts)
			srv.Register("/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte("pong"))
			}))
			srvDone := make(chan error, 1)
			go func() { srvDone <- srv.Start(srvCtx) }()
			Eventually(func() error { return srv.StartedChecker()(nil) }).Should(Succeed())

			addr := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
			pool := x509.NewCertPool()
			Expect(pool.AppendCertsFromPEM(ca.CertPEM)).To(BeTrue())
			httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				// A new connection, hence a new handshake, per request.
				DisableKeepAlives: true,
				TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
			}}

			// Clients call the webhook continuously while the files change.
			var (
				mu       sync.Mutex
				served   = map[string]int{}
				failures []string
				wg       sync.WaitGroup
			)
			loopCtx, stopLoop := context.WithCancel(srvCtx)
			for range 4 {
				wg.Go(func() {
					for loopCtx.Err() == nil {
						resp, err := httpClient.Get("https://" + addr + "/ping")
						if err != nil {
							mu.Lock()
							failures = append(failures, err.Error())
							mu.Unlock()
							continue
						}
						body, err := io.ReadAll(resp.Body)
						_ = resp.Body.Close()
						mu.Lock()
						if err != nil || resp.StatusCode != http.StatusOK || string(body) != "pong" {
							failures = append(failures, fmt.Sprintf("status %d, body %q, read error %v", resp.StatusCode, body, err))
						} else {
							served[resp.TLS.PeerCertificates[0].SerialNumber.String()]++
						}
						mu.Unlock()
					}
				})
			}
			servedWith := func(kp *certs.KeyPair) func() int {
				return func() int {
					mu.Lock()
					defer mu.Unlock()
					return served[kp.Cert.SerialNumber.String()]
				}
			}
			Eventually(servedWith(first)).Should(BeNumerically(">=", 20))
			Expect(servedSerial(addr, pool)).To(Equal(first.Cert.SerialNumber.String()))

			By("replacing the certificate files")
			second := issue(48 * time.Hour)
			Expect(write(dir, ca, second)).To(Succeed())

			Eventually(func() (string, error) { return servedSerial(addr, pool) }).
				WithTimeout(time.Minute).Should(Equal(second.Cert.SerialNumber.String()))
			Eventually(servedWith(second)).Should(BeNumerically(">=", 20))
			stopLoop()
			wg.Wait()
			Expect(failures).To(BeEmpty())
			Expect(served).To(HaveLen(2), "requests were served with exactly the two certificates")

			if moatWiring {
				Eventually(expiryMetric).Should(Equal(float64(second.Cert.NotAfter.Unix())))
			}
			stopServer()
			Eventually(srvDone).WithTimeout(time.Minute).Should(Receive(BeNil()))
		},
		Entry("files written by certs.Write, served through webhook.Options.CertDir",
			func() certWriter { return certs.Write }, false),
		Entry("files written by certs.Write, served as `moat serve` does (certs.NewServingWatcher)",
			func() certWriter { return certs.Write }, true),
		Entry("a Secret volume updated by the kubelet, served as `moat serve` does",
			func() certWriter { v := &secretVolume{}; return v.write }, true),
	)
})
