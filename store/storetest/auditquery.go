package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
)

// AuditQueryStore is a store that filters audit entries in the database.
type AuditQueryStore interface {
	Store
	compliance.AuditQuerier
}

// RunAuditQuery checks a backend's compliance.AuditQuerier against the same
// filters applied by hand to every stored entry. open returns a fresh,
// migrated, empty store and registers its own cleanup.
func RunAuditQuery(t *testing.T, open func(t *testing.T) AuditQueryStore) {
	ctx := context.Background()
	s := open(t)
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	key := []byte("storetest audit key")
	alice, bob := audit.HashIdentifier(key, "alice"), audit.HashIdentifier(key, "bob")
	const n = 240
	var batch []audit.Entry
	var prev audit.Hash
	for i := 1; i <= n; i++ {
		e := audit.Entry{
			Seq:         uint64(i),
			Time:        t0.Add(time.Duration(i/3) * time.Second), // three entries per second
			Actor:       []string{"admin:ops", "merchant:m1", "partner:crm", "compliance:rev"}[i%4],
			Action:      []string{"predict", "round.update.accept", "merchant.enrol"}[i%3],
			Object:      fmt.Sprint("obj/", i),
			Outcome:     audit.OutcomeOK,
			Identifiers: map[string]string{},
			Details:     map[string]string{"n": fmt.Sprint(i)},
			PrevHash:    prev,
		}
		if i%5 == 0 {
			e.Identifiers["customer"] = alice
		}
		if i%7 == 0 {
			e.Identifiers["merchant"] = bob
		}
		if i%11 == 0 {
			e.Details["note"] = alice // details are not identifiers: never matched
		}
		e.Hash = audit.EntryHash(prev, &e)
		prev = e.Hash
		batch = append(batch, e)
	}
	if err := s.AppendAudit(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}
	all, err := s.AuditEntries(ctx, 1, n+10)
	if err != nil || len(all) != n {
		t.Fatalf("read back %d entries (%v), want %d", len(all), err, n)
	}
	sec := func(k int) time.Time { return t0.Add(time.Duration(k) * time.Second) }
	tests := []struct {
		name  string
		f     compliance.AuditFilter
		upTo  uint64
		limit int
	}{
		{"window", compliance.AuditFilter{After: 10}, 30, 1000},
		{"limit", compliance.AuditFilter{After: 0}, 1000, 7},
		{"actor", compliance.AuditFilter{Actor: "partner:crm"}, 1000, 1000},
		{"action in window", compliance.AuditFilter{Action: "predict", After: 100}, 200, 1000},
		{"actor and action", compliance.AuditFilter{Actor: "admin:ops", Action: "merchant.enrol"}, 1000, 5},
		{"identifier", compliance.AuditFilter{Identifier: alice}, 1000, 1000},
		{"identifier other key", compliance.AuditFilter{Identifier: bob, After: 20}, 150, 1000},
		{"unknown identifier", compliance.AuditFilter{Identifier: audit.HashIdentifier(key, "carol")}, 1000, 1000},
		{"since exact", compliance.AuditFilter{Since: sec(10)}, 1000, 1000},
		{"since between milliseconds", compliance.AuditFilter{Since: sec(10).Add(-time.Microsecond)}, 1000, 1000},
		{"until exact", compliance.AuditFilter{Until: sec(10)}, 1000, 1000},
		{"until between milliseconds", compliance.AuditFilter{Until: sec(10).Add(time.Microsecond)}, 1000, 1000},
		{"range and identifier", compliance.AuditFilter{Since: sec(20), Until: sec(60), Identifier: alice}, 1000, 3},
		{"past the end", compliance.AuditFilter{After: n}, n + 50, 10},
		{"no match", compliance.AuditFilter{Actor: "nobody"}, 1000, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			f.Limit = tt.limit
			var want []uint64
			var wantLast uint64
			for i := range all {
				e := &all[i]
				if e.Seq <= f.After || e.Seq > tt.upTo {
					continue
				}
				wantLast = e.Seq
				if f.Match(e) && len(want) < tt.limit {
					want = append(want, e.Seq)
				}
			}
			got, last, err := s.QueryAuditEntries(ctx, f, tt.upTo)
			if err != nil {
				t.Fatal(err)
			}
			var gotSeqs []uint64
			for i, e := range got {
				gotSeqs = append(gotSeqs, e.Seq)
				if w := all[e.Seq-1]; e.Hash != w.Hash || e.Actor != w.Actor || !e.Time.Equal(w.Time) || len(e.Identifiers) != len(w.Identifiers) {
					t.Errorf("entry %d (seq %d): got %+v, want %+v", i, e.Seq, e, w)
				}
			}
			if !slices.Equal(gotSeqs, want) || last != wantLast {
				t.Errorf("got seqs %v last %d, want %v last %d", gotSeqs, last, want, wantLast)
			}
		})
	}

	// A cursor walk through compliance.QueryAudit sees the same entries
	// whether the store filters or the entries are filtered in Go.
	plain := struct{ audit.Source }{s}
	for _, f := range []compliance.AuditFilter{{Limit: 13}, {Identifier: alice, Limit: 4}, {Actor: "merchant:m1", Since: sec(30), Limit: 1000}} {
		walk := func(src audit.Source) []uint64 {
			var seqs []uint64
			g := f
			for range n + 1 {
				p, err := compliance.QueryAudit(ctx, src, g)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range p.Entries {
					seqs = append(seqs, e.Seq)
				}
				if p.Next == 0 {
					return seqs
				}
				g.After = p.Next
			}
			t.Fatalf("filter %+v: cursor does not end", f)
			return nil
		}
		if got, want := walk(s), walk(plain); !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("filter %+v: walked %v in the database, %v in Go", f, got, want)
		}
	}
}
