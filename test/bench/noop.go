package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/webhook"
)

// noopCommand is the first argument that runs this program as the baseline
// webhook server.
const noopCommand = "noop-webhook"

// noopPath is where the baseline serves: the path of moat's allowlist
// webhook, so that the load generator sends the very same request.
const noopPath = webhook.ValidateNetworkAllowlistPath

// noopValidator admits every NetworkAllowlist without looking at it.
type noopValidator struct{}

var _ admission.Validator[*v1alpha1.NetworkAllowlist] = noopValidator{}

func (noopValidator) ValidateCreate(context.Context, *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return nil, nil
}

func (noopValidator) ValidateUpdate(context.Context, *v1alpha1.NetworkAllowlist, *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return nil, nil
}

func (noopValidator) ValidateDelete(context.Context, *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return nil, nil
}

// runNoop serves the no-op validating webhook with the webhook server of
// `moat serve`, configured as moat serve configures it by default
// (webhook.NewServer: controller-runtime's server with the default read and
// write deadlines; TLS 1.3 minimum, HTTP/1.1 only, certificate from
// --cert-dir) until SIGTERM, so that the two differ only in their handlers.
func runNoop(args []string) int {
	fs := flag.NewFlagSet(noopCommand, flag.ContinueOnError)
	certDir := fs.String("cert-dir", "", "directory holding tls.crt and tls.key")
	port := fs.Int("port", 0, "port on 127.0.0.1")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctrl.SetLogger(zap.New())
	server := webhook.NewServer(crwebhook.Options{
		Host:    "127.0.0.1",
		Port:    *port,
		CertDir: *certDir,
		TLSOpts: []func(*tls.Config){
			func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 },
			func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} },
		},
	}, webhook.DefaultReadTimeout, webhook.DefaultWriteTimeout)
	server.Register(noopPath, admission.WithValidator(newScheme(), admission.Validator[*v1alpha1.NetworkAllowlist](noopValidator{})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "noop-webhook:", err)
		return 1
	}
	return 0
}
