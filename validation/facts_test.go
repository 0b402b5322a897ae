package validation

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"moat.dev/moat/api/v1alpha1"
)

// countingCluster counts the list lookups made through it.
type countingCluster struct {
	*mapCluster
	services, allowlists int
}

func (c *countingCluster) Services(namespace string) ([]*corev1.Service, error) {
	c.services++
	return c.mapCluster.Services(namespace)
}

func (c *countingCluster) Allowlists(namespace string) ([]*v1alpha1.NetworkAllowlist, error) {
	c.allowlists++
	return c.mapCluster.Allowlists(namespace)
}

// factsCluster is a Cluster that serves its facts with a FactCache over
// itself, as manifest.Index does.
type factsCluster struct {
	*countingCluster
	*FactCache
}

// TestFactCacheDerivesOnce: validating many allowlists of a namespace
// through a FactSource lists the namespace's Services and a peer
// namespace's allowlists once, with the same findings as without it; a
// failed lookup is not remembered.
func TestFactCacheDerivesOnce(t *testing.T) {
	cluster := newCluster(namespace("demo-project-1", "true"), namespace("demo-project-2", "true"),
		service("demo-project-1", "web", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports = []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}
		}),
		allowlistIn("demo-project-2", "out", `{"egress":[{"to":[{"namespace":"elsewhere"}]}]}`))
	nal := allowlistIn("demo-project-1", "in", `{"ingress":[{"from":[{"namespace":"demo-project-2"},{"ipBlock":{"cidr":"203.0.113.0/24"}}],"ports":[{"port":80}]}]}`)

	plain := &countingCluster{mapCluster: cluster}
	wantErrs, wantWarnings := ValidateNetworkAllowlist(nal, Config{}, plain)
	if len(wantWarnings) != 3 {
		t.Fatalf("want three warnings (peer egress, Service port, source address), got %v", wantWarnings)
	}
	counting := &countingCluster{mapCluster: cluster}
	cached := factsCluster{countingCluster: counting}
	cached.FactCache = NewFactCache(cached)
	for range 5 {
		errs, warnings := ValidateNetworkAllowlist(nal, Config{}, cached)
		if diff := cmp.Diff(fmt.Sprint(wantErrs, wantWarnings), fmt.Sprint(errs, warnings)); diff != "" {
			t.Fatalf("findings through the cache (-without +with):\n%s", diff)
		}
	}
	if counting.services != 1 || counting.allowlists != 1 {
		t.Errorf("five validations listed Services %d times and allowlists %d times, want once each", counting.services, counting.allowlists)
	}

	cluster.err = errors.New("down")
	if _, err := cached.ServiceFacts("other"); err == nil {
		t.Fatal("a failed lookup gave facts")
	}
	cluster.err = nil
	if _, err := cached.ServiceFacts("other"); err != nil {
		t.Errorf("the failed lookup was remembered: %v", err)
	}
}

// allowlistIn returns an allowlist whose spec is the JSON spec.
func allowlistIn(namespace, name, spec string) *v1alpha1.NetworkAllowlist {
	al := &v1alpha1.NetworkAllowlist{}
	al.Namespace, al.Name = namespace, name
	if err := json.Unmarshal([]byte(spec), &al.Spec); err != nil {
		panic(err)
	}
	return al
}

// TestListBounded: a warning names MaxListed items and how many more.
func TestListBounded(t *testing.T) {
	var items []string
	for i := range MaxListed + 3 {
		items = append(items, fmt.Sprintf("s%d", i))
	}
	if got := listBounded(items[:MaxListed], ", ", "Services"); got != strings.Join(items[:MaxListed], ", ") {
		t.Errorf("at the bound: %q", got)
	}
	if got, want := listBounded(items, ", ", "Services"), strings.Join(items[:MaxListed], ", ")+", 3 more Services"; got != want {
		t.Errorf("past the bound: %q, want %q", got, want)
	}
}
