package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"moat.dev/moat/certs"
)

// startDeadlineServer serves an echo handler at /echo on 127.0.0.1 with the
// given read timeout and returns its address and a TLS config trusting it.
func startDeadlineServer(t *testing.T, read time.Duration) (string, *tls.Config) {
	t.Helper()
	ca, err := certs.NewCA(certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue(certs.ServingOptions{IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certs")
	if err := certs.Write(dir, ca, kp); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	srv := NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir}, read, time.Minute)
	srv.Register("/echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		_, _ = w.Write(body)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		conn, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			_ = conn.Close()
			return addr, cfg
		}
		if i == 200 {
			t.Fatalf("server did not start: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestServerClosesSlowBodies(t *testing.T) {
	addr, cfg := startDeadlineServer(t, 500*time.Millisecond)

	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := io.WriteString(conn, "POST /echo HTTP/1.1\r\nHost: moat\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	// Trickle the body; the server must end the request once the read
	// deadline passes instead of waiting for all 1000 bytes. A bounded
	// wait (60 s), not a timing target: without the deadline it never ends.
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	give := time.After(60 * time.Second)
	for {
		select {
		case <-closed:
			return
		case <-give:
			t.Fatal("the server still reads a body that has been trickling for 60 s")
		case <-time.After(100 * time.Millisecond):
			_, _ = conn.Write([]byte(" "))
		}
	}
}

func TestServerServesKeptAliveConnections(t *testing.T) {
	addr, cfg := startDeadlineServer(t, 500*time.Millisecond)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 1}}
	// Requests on one kept-alive connection, spread over longer than the
	// read deadline: the deadlines of one request must not leak into the next.
	for i := range 3 {
		body := fmt.Sprintf(`{"request":%d}`, i)
		resp, err := client.Post("https://"+addr+"/echo", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, []byte(body)) {
			t.Fatalf("request %d: status %d, body %q, err %v; want 200 and %q", i, resp.StatusCode, got, err, body)
		}
		time.Sleep(700 * time.Millisecond)
	}
}
