// Package e2e holds moat's end-to-end suites. They run on a real
// kube-apiserver and etcd started by controller-runtime's envtest from the
// binaries that `make control-plane` builds into bin/, with the CRD from
// manifests/crd/bases and the webhook configurations from manifests/webhook
// installed, and moat's webhooks and controllers running in a manager inside
// the test process.
//
// Run them with `make test`, or `go test ./test/e2e/...` once bin/ holds
// kube-apiserver, etcd and kubectl.
package e2e
