package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// TestTokenFileMode: the merchant token (a bearer credential valid for up to
// 90 days) was read whatever its file's mode, while the key files beside it
// are refused when group or others can read them. A token file that group or
// others can access is now refused as a key file is (keys.ErrInsecureMode,
// naming the file and the mode, saying what to do), as are a file that is
// not regular and one far larger than a token.
func TestTokenFileMode(t *testing.T) {
	dir := t.TempDir()
	c := &Config{TokenFile: "token", dir: dir}
	path := filepath.Join(dir, "token")
	write := func(data string, mode os.FileMode) {
		t.Helper()
		_ = os.Remove(path)
		if err := os.WriteFile(path, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		write("eyJ.tok.en\n", mode)
		if tok, err := c.Token(); err != nil || tok != "eyJ.tok.en" {
			t.Errorf("mode %#o: got %q, %v; want the token", mode, tok, err)
		}
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		write("eyJ.tok.en\n", mode)
		tok, err := c.Token()
		if !errors.Is(err, keys.ErrInsecureMode) || !strings.Contains(err.Error(), path) {
			t.Errorf("mode %#o: got %q, %v; want an error wrapping keys.ErrInsecureMode naming %s", mode, tok, err, path)
		}
	}
	write(strings.Repeat("x", 1<<20), 0o600)
	if _, err := c.Token(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("1 MiB token file: %v, want refused as too large", err)
	}
	_ = os.Remove(path)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(); err == nil {
		t.Error("a directory as token file: no error")
	}
}

// TestRunnerRefusesAbsurdPlan: a malicious or compromised aggregator
// chose a plan's sizes without a bound the client checked. Two billion
// DP-SGD steps at a huge noise multiplier cost almost no ε, so the local
// ledger let the client train for ever (a merchant's machine held at full
// CPU, never joining another round: 1.6·10⁻⁶·α of RDP at q = 10⁻⁶, z = 50); thousands of cutoffs made it build a
// row per customer per cutoff before any check (memory without bound: the
// plan's body may be 64 MB, millions of cutoffs); an evaluation plan may
// name a million bins. Each is refused before the client builds a feature or
// debits anything, naming the field, its size and the bound.
func TestRunnerRefusesAbsurdPlan(t *testing.T) {
	many := func(n int) []time.Time {
		out := make([]time.Time, n)
		for i := range out {
			out[i] = date(1997, 1, 1).Add(time.Duration(i) * time.Hour)
		}
		return out
	}
	edges := func(n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = float64(i+1) / float64(n+1)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		edit func(*protocol.TrainingPlan)
		want string
	}{
		{"steps", func(p *protocol.TrainingPlan) { p.Steps, p.SamplingRate, p.NoiseMultiplier = 2_000_000_000, 1e-6, 50 }, "steps 2000000000"},
		{"cutoffs", func(p *protocol.TrainingPlan) { p.Cutoffs = many(5000) }, "5000 cutoffs"},
		{"evaluation edges", func(p *protocol.TrainingPlan) {
			p.Evaluation = &protocol.EvaluationPlan{Cutoff: date(1998, 3, 1), Edges: edges(100_000), Sigma: 10}
		}, "100000 edges"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newRunnerEnv(t)
			tt.edit(&e.agg.plan)
			r, st, done := e.runner(t, 100, nil)
			defer done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := r.Run(ctx, 1)
			if err == nil || !errors.Is(err, protocol.ErrPlanTooLarge) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v; want protocol.ErrPlanTooLarge naming %q", err, tt.want)
			}
			if len(e.agg.updates) != 0 || len(st.Releases) != 0 || len(r.rows) != 0 {
				t.Errorf("%d updates sent, %d releases debited, %d feature sets built; want none", len(e.agg.updates), len(st.Releases), len(r.rows))
			}
		})
	}
}
