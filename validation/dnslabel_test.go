package validation

import (
	"reflect"
	"strings"
	"testing"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

var dnsLabelSeeds = []string{
	"", "a", "0", "-", "a-", "-a", "a-b", "0a", "a0", "nginx", "backend-9", "Nginx", "a.b", "a_b", "a b", "a\n",
	"\na", "é", "a\x00", strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("0", 63), "9-lives",
}

// dnsLabelAgrees checks the byte check against k8s.io/apimachinery's
// regular expressions: the same verdict and the same messages.
func dnsLabelAgrees(t *testing.T, name string) {
	t.Helper()
	if got, want := isDNS1123Label(name), utilvalidation.IsDNS1123Label(name); !reflect.DeepEqual(got, want) {
		t.Errorf("isDNS1123Label(%q) = %q, IsDNS1123Label %q", name, got, want)
	}
	if got, want := isDNS1035Label(name), utilvalidation.IsDNS1035Label(name); !reflect.DeepEqual(got, want) {
		t.Errorf("isDNS1035Label(%q) = %q, IsDNS1035Label %q", name, got, want)
	}
	if got, want := isDNSLabel(name, false), len(utilvalidation.IsDNS1123Label(name)) == 0; got != want {
		t.Errorf("isDNSLabel(%q, false) = %v, IsDNS1123Label accepts: %v", name, got, want)
	}
	if got, want := isDNSLabel(name, true), len(utilvalidation.IsDNS1035Label(name)) == 0; got != want {
		t.Errorf("isDNSLabel(%q, true) = %v, IsDNS1035Label accepts: %v", name, got, want)
	}
}

func TestDNSLabelAgreesWithApimachinery(t *testing.T) {
	for _, name := range dnsLabelSeeds {
		dnsLabelAgrees(t, name)
	}
	// Every label of one and two characters over an alphabet wider than
	// the valid one.
	const alphabet = "az09-._A\n"
	for _, a := range alphabet {
		dnsLabelAgrees(t, string(a))
		for _, b := range alphabet {
			dnsLabelAgrees(t, string(a)+string(b))
		}
	}
}

// FuzzDNSLabel is the differential fuzz target of isDNSLabel against
// utilvalidation.IsDNS1123Label and IsDNS1035Label.
func FuzzDNSLabel(f *testing.F) {
	for _, name := range dnsLabelSeeds {
		f.Add(name)
	}
	f.Fuzz(dnsLabelAgrees)
}
