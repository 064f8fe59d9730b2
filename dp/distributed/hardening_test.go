package distributed

import (
	"bufio"
	"context"
	"math"
	"slices"
	"testing"
)

// stream is a deterministic byte stream (seeded) for comparing two encodings.
func stream(b byte) *bufio.Reader { return bufio.NewReader(seeded(b)) }

// TestEncodeNonFiniteContributesZero (hardening review, session 18): a
// customer whose contribution holds a NaN or ±Inf failed the whole encoding,
// so whether a merchant could send its share at all depended on that one
// customer (issue 10's data-dependent abort, in the secure path). Now such a
// contribution is the zero vector: with the same randomness, the encoding
// with it equals the encoding without it, noise included.
func TestEncodeNonFiniteContributesZero(t *testing.T) {
	ctx := context.Background()
	p := testParams(3)
	honest := [][]float64{{0.3, -0.2, 0.1}, {1, 2, 2}}
	for _, bad := range [][]float64{{1, math.NaN(), 0}, {0, 0, math.Inf(-1)}, {math.Inf(1), math.NaN(), math.MaxFloat64}} {
		for _, noisy := range []bool{false, true} {
			want, err := encode(ctx, honest, p, stream(9), noisy)
			if err != nil {
				t.Fatal(err)
			}
			with := [][]float64{honest[0], bad, honest[1]}
			got, err := encode(ctx, with, p, stream(9), noisy)
			if err != nil {
				t.Fatalf("contribution %v (noise %v): %v; want it counted as zero", bad, noisy, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("contribution %v (noise %v): encoding %v, want %v (as without it)", bad, noisy, got, want)
			}
		}
	}
	// The public entry point accepts it too.
	if _, err := Encode(ctx, [][]float64{{math.NaN(), 0, 0}}, p); err != nil {
		t.Errorf("Encode with one non-finite contribution: %v", err)
	}
}
