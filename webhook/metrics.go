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

func init() {
	metrics.Registry.MustRegister(isolationApplies)
	// Export both series from the start, so that alerts on failures work
	// before the first one happens.
	isolationApplies.WithLabelValues(resultSuccess)
	isolationApplies.WithLabelValues(resultFailure)
}
