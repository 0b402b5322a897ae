package webhook

import (
	"net/http"
	"time"

	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Default per-request limits of the webhook server. The API server sends an
// AdmissionReview in one piece and gives up after the webhook's
// timeoutSeconds (at most 10 s in moat's configurations), so a request that
// is still arriving after ReadTimeout, or an answer still being written after
// WriteTimeout, only ties up a connection.
const (
	DefaultReadTimeout  = 10 * time.Second
	DefaultWriteTimeout = 15 * time.Second
)

// NewServer returns controller-runtime's webhook server with per-request read
// and write deadlines added. controller-runtime bounds only the request
// headers (32 s) and the body size (7 MiB); without a read deadline a client
// that sends its body a byte at a time holds its connection for as long as it
// likes. Every handler registered on the returned server must receive its
// whole request within readTimeout and have its answer written within
// writeTimeout of the headers being read; otherwise the connection is closed.
// A zero timeout leaves that side unbounded.
func NewServer(opts crwebhook.Options, readTimeout, writeTimeout time.Duration) crwebhook.Server {
	return &deadlineServer{Server: crwebhook.NewServer(opts), read: readTimeout, write: writeTimeout}
}

// deadlineServer is a webhook.Server whose handlers run under deadlines.
type deadlineServer struct {
	crwebhook.Server
	read, write time.Duration
}

// Register registers hook at path, wrapped so that it runs under the
// server's read and write deadlines.
func (s *deadlineServer) Register(path string, hook http.Handler) {
	s.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		if s.read > 0 {
			_ = rc.SetReadDeadline(now.Add(s.read))
		}
		if s.write > 0 {
			_ = rc.SetWriteDeadline(now.Add(s.write))
			// net/http resets the read deadline for the next request on a
			// kept-alive connection but not the write deadline: clear it.
			defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
		}
		hook.ServeHTTP(w, r)
	}))
}
