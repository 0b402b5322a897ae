// Package robustness holds moat's robustness tests of its webhook server:
// the real `moat serve` binary, built from this tree and run against a real
// kube-apiserver and etcd (envtest, from bin/), is sent malformed, oversized
// and slow HTTP requests, and must answer each with a bounded, well-formed
// AdmissionReview (or close the connection) while it keeps serving everyone
// else.
//
// Run them with `make test`, or `go test ./test/robustness/` once bin/
// holds kube-apiserver and etcd.
package robustness
