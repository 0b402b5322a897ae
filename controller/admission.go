package controller

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"moat.dev/moat/policy"
)

// AdmissionVersionAnnotation marks a NetworkPolicy that ApplyNamespace wrote
// while a request isolating its namespace was being admitted. Its value is
// the resourceVersion of the stored namespace that request changes. The
// controller's next write of the policy drops it.
const AdmissionVersionAnnotation = "moat.dev/admitted-namespace-version"

// admissionGrace bounds how long a policy written during admission is kept
// in a namespace that does not (yet) look isolated (policy.AdmissionGrace,
// which the webhook's forgery guard honours too).
const admissionGrace = policy.AdmissionGrace

// holdAdmissionWrites splits the managed policies a reconcile of the
// not-isolated namespace ns would delete into those to delete now and, after
// how long to look again at the others.
//
// The mutating webhook writes a namespace's policies (ApplyNamespace) while
// the request that labels it is still being admitted, so they are stored
// before the label is. A reconcile in that window sees the namespace without
// the label and would delete them. A policy is therefore kept while it is
// younger than admissionGrace and was written during the admission of a
// change to exactly the namespace version this reconcile sees: once the label
// is stored, the namespace has a new version and its event brings the
// reconcile that keeps the policy; if the labelling request was refused after
// all, the policy goes when the grace period ends. Any later change of the
// namespace (the label removed again) deletes it at once.
func holdAdmissionWrites(ns *corev1.Namespace, deletes []*networkingv1.NetworkPolicy, now time.Time) ([]*networkingv1.NetworkPolicy, time.Duration) {
	var deleteNow []*networkingv1.NetworkPolicy
	var recheck time.Duration
	for _, np := range deletes {
		remaining := lastWrite(np).Add(admissionGrace).Sub(now)
		version, ok := np.Annotations[AdmissionVersionAnnotation]
		if !ok || ns.ResourceVersion == "" || version != ns.ResourceVersion || remaining <= 0 {
			deleteNow = append(deleteNow, np)
			continue
		}
		if recheck == 0 || remaining < recheck {
			recheck = remaining
		}
	}
	return deleteNow, recheck
}

// lastWrite is when moat last changed the policy: the time of its
// server-side apply entry in managedFields, or the creation time when there
// is none. A policy left from an earlier isolation that ApplyNamespace marked
// during admission is old, but was written just now.
func lastWrite(np *networkingv1.NetworkPolicy) time.Time {
	written := np.CreationTimestamp.Time
	for _, entry := range np.ManagedFields {
		if entry.Manager == FieldManager && entry.Operation == metav1.ManagedFieldsOperationApply && entry.Time != nil && entry.Time.After(written) {
			written = entry.Time.Time
		}
	}
	return written
}
