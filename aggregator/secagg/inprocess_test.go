package secagg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestInProcess: a round with a client dropping at each stage returns the
// sum, computed here, of the clients that sent a masked input; the same round
// with too many dropouts is refused.
func TestInProcess(t *testing.T) {
	cfg := testConfig(16, 10, 6, 8, 20, 33)
	rng := rand.New(rand.NewPCG(5, 6))
	in := map[uint32][]uint32{}
	for _, id := range cfg.Clients {
		x := make([]uint32, cfg.Length)
		for j := range x {
			x[j] = uint32(rng.Uint64N(1 << 20))
		}
		in[id] = x
	}
	drop := map[uint32]Dropout{cfg.Clients[0]: DropAdvertise, cfg.Clients[3]: DropShare, cfg.Clients[6]: DropMask, cfg.Clients[9]: DropUnmask}
	res, err := InProcess(context.Background(), cfg, InProcessOptions{Inputs: in, Drop: drop, Rand: testRand(3)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Survivors) != 13 || len(res.Dropouts) != 1 || res.Dropouts[0] != cfg.Clients[6] {
		t.Fatalf("survivors %v, dropouts %v; want 13 and [%d]", res.Survivors, res.Dropouts, cfg.Clients[6])
	}
	for j := range cfg.Length {
		var want uint32
		for _, id := range cfg.Clients {
			if d := drop[id]; d == DropNone || d == DropUnmask {
				want += in[id][j]
			}
		}
		if res.Sum[j] != want%(1<<20) {
			t.Fatalf("word %d = %d, want %d", j, res.Sum[j], want%(1<<20))
		}
	}
	if res.ClientBytes == 0 || res.ServerBytes == 0 {
		t.Errorf("bytes counted %d/%d", res.ClientBytes, res.ServerBytes)
	}
	for i := 10; i < 16; i++ {
		drop[cfg.Clients[i]] = DropMask
	}
	if _, err := InProcess(context.Background(), cfg, InProcessOptions{Inputs: in, Drop: drop}); !errors.Is(err, ErrTooFewSurvivors) {
		t.Errorf("7 of 16 survivors (min 8): err %v, want ErrTooFewSurvivors", err)
	}
}

// BenchmarkInProcess is one whole round (all clients and the server, one
// core) with 128-word inputs (cdnow-100's padded model) and no dropouts, at
// the degrees ChooseDegree gives for 10% dropouts and 10% colluders (4, 22,
// 48), for 30% dropouts at 100 (60), and the complete graph at 100.
func BenchmarkInProcess(b *testing.B) {
	for _, tc := range []struct{ n, degree int }{{10, 4}, {100, 22}, {100, 60}, {100, 99}, {1000, 48}} {
		b.Run(fmt.Sprintf("n%d_degree%d", tc.n, tc.degree), func(b *testing.B) {
			d := min(tc.degree, tc.n-1)
			cfg := testConfig(tc.n, tc.degree, d/2+1, d/2+1, 32, 128)
			in := map[uint32][]uint32{}
			for _, id := range cfg.Clients {
				in[id] = make([]uint32, cfg.Length)
			}
			for b.Loop() {
				if _, err := InProcess(context.Background(), cfg, InProcessOptions{Inputs: in}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
