package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Values of the result label of moat_webhook_isolation_applies_total.
const (
	resultSuccess = "success"
	resultFailure = "failure"
)

// isolationApplies counts the policy writes of the mutating Namespace
// webhook by result. A failure is harmless for correctness (the request was
// admitted and the controller converges) but means isolation took effect
// later than the labelling request.
var isolationApplies = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "moat_webhook_isolation_applies_total",
	Help: "Writes of default isolation NetworkPolicies during namespace admission, by result (success, failure).",
}, []string{"result"})

// admissionWritesRefused counts admission requests for which the mutating
// Namespace webhook wrote nothing because the request could not be trusted
// (see AdmissionWriteGuard), by reason. Anything but the occasional
// awaiting-label means requests that the API server did not send, or
// labelling requests that were refused after moat wrote.
var admissionWritesRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "moat_webhook_admission_writes_refused_total",
	Help: "Namespace admission requests for which no isolation NetworkPolicy was written because the request did not match the stored namespace, named a protected namespace, or came after an earlier admission write of the namespace was not followed by its label, by reason.",
}, []string{"reason"})

func init() {
	metrics.Registry.MustRegister(isolationApplies, admissionWritesRefused)
	for _, reason := range []string{RefusedProtected, RefusedNotFound, RefusedUIDMismatch, RefusedVersionMismatch, RefusedAwaitingLabel, RefusedBackoff} {
		admissionWritesRefused.WithLabelValues(reason)
	}
	// Export both series from the start, so that alerts on failures work
	// before the first one happens.
	isolationApplies.WithLabelValues(resultSuccess)
	isolationApplies.WithLabelValues(resultFailure)
}
