package kubesphere

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"moat.dev/moat/validation"
)

// FuzzConvert reads arbitrary manifests and converts them: never a panic,
// the same answer twice, and every allowlist with at least one rule and
// every problem with a message.
func FuzzConvert(f *testing.F) {
	var seeds []string
	for _, pattern := range []string{
		filepath.Join("..", "cmd", "moat", "testdata", "kubesphere", "*.yaml"),
		filepath.Join("..", "cmd", "moat", "testdata", "kubesphere", "cluster", "*.yaml"),
		filepath.Join("testdata", "fidelity", "*.yaml"),
	} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, files...)
	}
	if len(seeds) == 0 {
		f.Fatal("no seed inputs")
	}
	for _, seed := range seeds {
		data, err := os.ReadFile(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"apiVersion":"network.kubesphere.io/v1alpha1","kind":"NamespaceNetworkPolicy","metadata":{"name":"x"},"spec":{"egress":[]}}`))
	f.Add([]byte("apiVersion: tenant.kubesphere.io/v1alpha1\nkind: Workspace\nmetadata: {name: w}\nspec: {networkIsolation: yes}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader()
		if err := r.Read("fuzz", bytes.NewReader(data)); err != nil {
			t.Fatalf("Read of an in-memory stream returned an I/O error: %v", err)
		}
		first := Convert(r.Input, validation.Config{})
		second := Convert(r.Input, validation.Config{})
		if !reflect.DeepEqual(first, second) {
			t.Fatal("Convert gave two different answers for the same input")
		}
		for _, al := range first.Allowlists {
			if len(al.Spec.Ingress) == 0 && len(al.Spec.Egress) == 0 {
				t.Errorf("allowlist %s/%s has no rule", al.Namespace, al.Name)
			}
			if errs, _ := validation.ValidateNetworkAllowlist(al, validation.Config{}, nil); len(errs) > 0 {
				t.Errorf("allowlist %s/%s fails validation: %v", al.Namespace, al.Name, errs)
			}
		}
		for _, ns := range first.Namespaces {
			if errs := append(validation.ValidateNamespace(ns), validation.ValidateNamespaceProtection(ns, validation.Config{})...); len(errs) > 0 {
				t.Errorf("namespace %s fails validation: %v", ns.Name, errs)
			}
		}
		for _, p := range append(r.Problems, first.Problems...) {
			if p.Message == "" || p.Severity == "" {
				t.Errorf("problem without message or severity: %+v", p)
			}
		}
	})
}
