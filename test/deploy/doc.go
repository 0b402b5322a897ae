// Package deploy tests moat's installation as a cluster admin performs it:
// manifests/default rendered with kustomize and applied, together with
// cert-manager's CRDs, to a real kube-apiserver and etcd started by
// controller-runtime's envtest from bin/; the RBAC it grants checked with
// SubjectAccessReviews and by running `moat serve` with the Deployment's
// arguments as moat's ServiceAccount; and the webhook serving certificate
// reloaded from disk while requests keep succeeding.
//
// It runs its own control plane rather than the end-to-end suite's: the
// rendered webhook configurations point at a Service with no pods, which
// would get in the way of the suite that runs moat in-process.
//
// Run it with `make test`, or `go test ./test/deploy/...` once bin/ holds
// kube-apiserver, etcd and kubectl.
package deploy
