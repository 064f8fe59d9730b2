package compliance_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/store/sqlite"
)

// benchLog writes n chained entries to a fresh SQLite store; every 100th
// names the customer whose HMAC the benchmark looks for.
func benchLog(b *testing.B, n int) (*sqlite.Store, string) {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	key := []byte("bench key")
	target := audit.HashIdentifier(key, "customer-42")
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var prev audit.Hash
	for lo := 1; lo <= n; lo += 5000 {
		var batch []audit.Entry
		for i := lo; i < lo+5000 && i <= n; i++ {
			e := audit.Entry{Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Millisecond), Actor: "partner:crm", Action: "predict",
				Object: "merchant/m1", Outcome: audit.OutcomeOK, PrevHash: prev,
				Identifiers: map[string]string{"customer": audit.HashIdentifier(key, fmt.Sprint("customer-", i%1000))}}
			if i%100 == 0 {
				e.Identifiers["customer"] = target
			}
			e.Hash = audit.EntryHash(prev, &e)
			prev = e.Hash
			batch = append(batch, e)
		}
		if err := st.AppendAudit(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	return st, target
}

// BenchmarkQueryAudit: one page (100 matches of an identifier present in 1%
// of the entries, so a 10,000-entry scan) filtered in SQLite, and the same
// filtered in Go over batched reads.
func BenchmarkQueryAudit(b *testing.B) {
	st, target := benchLog(b, 50000)
	f := compliance.AuditFilter{Identifier: target, Limit: 100}
	for _, bc := range []struct {
		name string
		src  audit.Source
	}{{"sqlite", st}, {"go", struct{ audit.Source }{st}}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				p, err := compliance.QueryAudit(context.Background(), bc.src, f)
				if err != nil || len(p.Entries) != 100 {
					b.Fatalf("got %d entries, %v", len(p.Entries), err)
				}
			}
		})
	}
}
