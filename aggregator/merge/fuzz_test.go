package merge

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzCombine decodes updates and weights from the fuzzer's bytes and checks what
// must hold for any input: no panic; an error or a finite result; every coordinate
// of the result within the range of that coordinate over the (norm-bounded)
// updates; and, for FedAvg, a result no longer than the norm bound.
func FuzzCombine(f *testing.F) {
	f.Add([]byte{2, 3, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 64}, uint8(0), 0.0, 0.0)
	f.Add([]byte{4, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, uint8(1), 0.0, 1.0)
	f.Add([]byte{5, 2, 255, 255, 255, 255, 255, 255, 239, 127, 1, 2, 3}, uint8(2), 0.2, 3.0)
	huge := []byte{2, 0} // three updates of one coordinate, each 1e308
	for range 3 {
		huge = binary.LittleEndian.AppendUint64(huge, math.Float64bits(1e308))
	}
	f.Add(huge, uint8(3), 0.0, 0.0)
	f.Add(huge, uint8(1), 0.0, 0.0)
	f.Fuzz(func(t *testing.T, data []byte, method uint8, trim, bound float64) {
		if len(data) < 2 {
			return
		}
		n, d := int(data[0]%8)+1, int(data[1]%8)+1
		data = data[2:]
		next := func() float64 {
			if len(data) < 8 {
				return 0
			}
			v := math.Float64frombits(binary.LittleEndian.Uint64(data))
			data = data[8:]
			return v
		}
		deltas := make([][]float64, n)
		for i := range deltas {
			deltas[i] = make([]float64, d)
			for j := range deltas[i] {
				deltas[i][j] = next()
			}
		}
		var weights []float64
		if len(data) >= 8*n {
			weights = make([]float64, n)
			for i := range weights {
				weights[i] = next()
			}
		}
		opt := Options{Method: []string{"", MethodFedAvg, MethodMedian, MethodTrimmedMean}[method%4], TrimFraction: trim, NormBound: bound}
		got, err := Combine(deltas, weights, opt)
		if err != nil {
			return
		}
		if len(got) != d {
			t.Fatalf("got %d coordinates, want %d", len(got), d)
		}
		for j := range d {
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, v := range deltas {
				x := v[j]
				if opt.NormBound > 0 {
					if nv := norm(v); nv > opt.NormBound {
						x *= opt.NormBound / nv
					}
				}
				lo, hi = min(lo, x), max(hi, x)
			}
			if math.IsNaN(got[j]) || math.IsInf(got[j], 0) {
				t.Fatalf("coordinate %d is %v", j, got[j])
			}
			slack := 1e-9 * max(math.Abs(lo), math.Abs(hi), 1e-300)
			if got[j] < lo-slack || got[j] > hi+slack {
				t.Fatalf("coordinate %d = %v outside [%v, %v]", j, got[j], lo, hi)
			}
		}
		if (opt.Method == "" || opt.Method == MethodFedAvg) && opt.NormBound > 0 {
			if nv := norm(got); nv > opt.NormBound*(1+1e-9) {
				t.Fatalf("FedAvg norm %v above the bound %v", nv, opt.NormBound)
			}
		}
	})
}

// FuzzCapShares checks for any weights and cap: an error or shares that sum
// to 1, none above max(cap, 1/n), in the order of the weights.
func FuzzCapShares(f *testing.F) {
	f.Add([]byte{5, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 20, 64}, 0.5)
	f.Add(binary.LittleEndian.AppendUint64([]byte{3}, math.Float64bits(1e300)), 0.3)
	f.Fuzz(func(t *testing.T, data []byte, maxShare float64) {
		if len(data) < 1 {
			return
		}
		n := int(data[0]%8) + 1
		data = data[1:]
		w := make([]float64, n)
		for i := range w {
			if len(data) >= 8 {
				w[i] = math.Float64frombits(binary.LittleEndian.Uint64(data))
				data = data[8:]
			} else {
				w[i] = 1
			}
		}
		got, err := CapShares(w, maxShare)
		if err != nil {
			return
		}
		limit := max(maxShare, 1/float64(n)) * (1 + 1e-9)
		var sum float64
		for i, s := range got {
			if !(s >= 0 && s <= limit) {
				t.Fatalf("share %d = %v outside [0, %v] (weights %v)", i, s, limit, w)
			}
			sum += s
			for j := range got {
				if w[i] < w[j] && got[i] > got[j]*(1+1e-9) {
					t.Fatalf("weight %v < %v but share %v > %v", w[i], w[j], got[i], got[j])
				}
			}
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Fatalf("shares sum to %v (weights %v)", sum, w)
		}
	})
}
