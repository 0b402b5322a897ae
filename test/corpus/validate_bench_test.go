package corpus

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"moat.dev/moat/manifest"
	"moat.dev/moat/validation"
)

// BenchmarkValidateInProcess measures the in-process path of `moat
// validate` (read the stream, index, validate every object, sort the
// findings) on the issue-8 corpus, per object of the corpus.
func BenchmarkValidateInProcess(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("NetworkPolicies=%d", n), func(b *testing.B) {
			o := Options{NetworkPolicies: n}
			c := CountsOf(o)
			var in bytes.Buffer
			if err := Write(&in, Documents(o)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(in.Len()))
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				x, findings, err := manifest.Check([]string{manifest.Stdin}, bytes.NewReader(in.Bytes()), nil, corpusConfig)
				if err != nil {
					b.Fatal(err)
				}
				if x.ObjectsRead != c.Total() || len(findings) != c.SCTPPolicies {
					b.Fatalf("read %d objects with %d findings, want %d and %d", x.ObjectsRead, len(findings), c.Total(), c.SCTPPolicies)
				}
			}
			runtime.ReadMemStats(&after)
			objects := float64(b.N) * float64(c.Total())
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/objects, "ns/object")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/objects, "allocs/object")
		})
	}
}

// corpusConfig validates the corpus as `moat validate
// --tenant-network-policies=off` does: its policies are a platform team's.
var corpusConfig = validation.Config{TenantNetworkPolicies: validation.TenantPoliciesOff}
