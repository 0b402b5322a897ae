// Package v1alpha1 contains the moat.dev/v1alpha1 API: the NetworkAllowlist
// that opens an isolated project (namespace) to other projects, Services and
// external networks.
// +kubebuilder:object:generate=true
// +groupName=moat.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "moat.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers NetworkAllowlist and its list under GroupVersion.
func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &NetworkAllowlist{}, &NetworkAllowlistList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
