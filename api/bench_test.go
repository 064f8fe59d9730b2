package api

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
)

// BenchmarkSubmitAPIOnly measures what the API adds to a submission: routing,
// token verification, role and merchant checks, the body read, the envelope
// header parse, metrics and the receipt. The service is the in-memory one.
func BenchmarkSubmitAPIOnly(b *testing.B) {
	f := newFixture(b, &fakeService{}, Options{})
	env := f.envelope(b, "m1", "r1")
	auth := "Bearer " + f.tokens["m1"]
	b.ReportAllocs()
	b.SetBytes(int64(len(env)))
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/rounds/r1/updates", bytes.NewReader(env))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkSubmitAccepted measures accepted updates through the API over the
// real service on SQLite: token check, signature check, decryption, ledger
// debit and audit entry per update, one merchant after another. Each merchant
// may send one update per round, so after every 128 updates the round is
// closed and the next opened, outside the timer.
func BenchmarkSubmitAccepted(b *testing.B) {
	const merchants = 128
	var pol strings.Builder
	pol.WriteString(realPolicy)
	ids := make([]string, merchants)
	for i := range ids {
		ids[i] = fmt.Sprintf("b%03d", i)
		fmt.Fprintf(&pol, "  %s: {}\n", ids[i])
	}
	rounds := aggregator.RoundConfig{Quorum: 1, Deadline: time.Hour, PlannedRounds: 40}
	f := newRealFixtureWith(b, pol.String(), ids, rounds, Options{})
	ctx := b.Context()

	var (
		envs  [][]byte
		paths []string
	)
	prepare := func() {
		envs, paths = envs[:0], paths[:0]
		for _, id := range ids {
			r, err := f.svc.CurrentRound(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if !r.Selected {
				b.Fatalf("%s not selected in %s", id, r.ID)
			}
			envs = append(envs, f.honest(b, id))
			paths = append(paths, "/v1/rounds/"+r.ID+"/updates")
		}
	}
	prepare()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == merchants {
			b.StopTimer()
			f.clock.Add(rounds.Deadline + time.Second)
			if err := f.svc.Tick(ctx); err != nil {
				b.Fatal(err)
			}
			prepare()
			i = 0
			b.StartTimer()
		}
		req := httptest.NewRequest("POST", paths[i], bytes.NewReader(envs[i]))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Authorization", "Bearer "+f.tokens[ids[i]])
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("update %d: status %d: %s", i, rec.Code, rec.Body)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}
