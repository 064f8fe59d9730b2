package compliance_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
)

// memSource is an in-memory audit.Source counting how many entries it hands out.
type memSource struct {
	entries []audit.Entry
	read    int
}

func (m *memSource) AuditEntries(_ context.Context, from uint64, limit int) ([]audit.Entry, error) {
	var out []audit.Entry
	for _, e := range m.entries {
		if e.Seq >= from && len(out) < limit {
			out = append(out, e)
		}
	}
	m.read += len(out)
	return out, nil
}

func (m *memSource) AuditCheckpoints(context.Context) ([]audit.Checkpoint, error) {
	return []audit.Checkpoint{{LogID: "log", Seq: 2, Hash: audit.Hash{1}, Time: time.Unix(5, 0), Signature: []byte{0xff, 0xfe}}}, nil
}

var (
	hmacA = audit.IdentifierPrefix + strings.Repeat("a", 64)
	hmacB = audit.IdentifierPrefix + strings.Repeat("b", 64)
)

// source builds entries 1..n, one a minute from t0; entry i has actor
// admin:root when i%3 == 0, action predict when i is even, and identifier
// hmacA when i%5 == 0.
func source(n int, t0 time.Time) *memSource {
	m := &memSource{}
	for i := 1; i <= n; i++ {
		e := audit.Entry{Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Minute), Actor: "merchant:m1",
			Action: "round.update.accept", Object: fmt.Sprint("round/", i), Outcome: audit.OutcomeOK,
			Identifiers: map[string]string{"merchant": hmacB}}
		if i%3 == 0 {
			e.Actor = "admin:root"
		}
		if i%2 == 0 {
			e.Action = "predict"
		}
		if i%5 == 0 {
			e.Identifiers["customer"] = hmacA
		}
		m.entries = append(m.entries, e)
	}
	return m
}

func seqs(p compliance.AuditPage) []uint64 {
	var out []uint64
	for _, e := range p.Entries {
		out = append(out, e.Seq)
	}
	return out
}

func TestQueryAudit(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	src := source(30, t0)
	tests := []struct {
		name     string
		f        compliance.AuditFilter
		want     []uint64
		wantNext uint64
	}{
		{"first page", compliance.AuditFilter{Limit: 4}, []uint64{1, 2, 3, 4}, 4},
		{"after cursor", compliance.AuditFilter{After: 27}, []uint64{28, 29, 30}, 0},
		{"actor", compliance.AuditFilter{Actor: "admin:root", Limit: 3}, []uint64{3, 6, 9}, 9},
		{"actor and action", compliance.AuditFilter{Actor: "admin:root", Action: "predict"}, []uint64{6, 12, 18, 24, 30}, 0},
		{"identifier", compliance.AuditFilter{Identifier: hmacA}, []uint64{5, 10, 15, 20, 25, 30}, 0},
		{"identifier everywhere", compliance.AuditFilter{Identifier: hmacB, After: 28}, []uint64{29, 30}, 0},
		{"time range", compliance.AuditFilter{Since: t0.Add(10 * time.Minute), Until: t0.Add(13 * time.Minute)}, []uint64{10, 11, 12}, 0},
		{"since only", compliance.AuditFilter{Since: t0.Add(29*time.Minute + time.Millisecond)}, []uint64{30}, 0},
		{"no match", compliance.AuditFilter{Actor: "partner:x"}, nil, 0},
		{"past the end", compliance.AuditFilter{After: 99}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := compliance.QueryAudit(context.Background(), src, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(p); !slices.Equal(got, tt.want) || p.Next != tt.wantNext {
				t.Errorf("got seqs %v next %d, want %v next %d", got, p.Next, tt.want, tt.wantNext)
			}
		})
	}
}

// TestQueryAuditUntilStops: times never decrease, so the scan ends at the
// first entry at or after until.
func TestQueryAuditUntilStops(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	src := source(3000, t0)
	p, err := compliance.QueryAudit(context.Background(), src, compliance.AuditFilter{Until: t0.Add(3 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(p); !slices.Equal(got, []uint64{1, 2}) || p.Next != 0 || p.Scanned != 3 {
		t.Errorf("got %v next %d scanned %d, want [1 2], 0, 3", got, p.Next, p.Scanned)
	}
}

// TestQueryAuditPaging walks a selective filter over a log longer than one
// query may scan: every match is seen exactly once, in order.
func TestQueryAuditPaging(t *testing.T) {
	n := compliance.MaxAuditScan + 5000
	src := source(n, time.Unix(0, 0).UTC())
	f := compliance.AuditFilter{Identifier: hmacA, Limit: 1000}
	var got []uint64
	pages := 0
	for {
		p, err := compliance.QueryAudit(context.Background(), src, f)
		if err != nil {
			t.Fatal(err)
		}
		if p.Scanned > compliance.MaxAuditScan {
			t.Fatalf("page %d scanned %d entries, more than %d", pages, p.Scanned, compliance.MaxAuditScan)
		}
		pages++
		got = append(got, seqs(p)...)
		if p.Next == 0 {
			break
		}
		f.After = p.Next
	}
	if len(got) != n/5 {
		t.Fatalf("got %d matches, want %d", len(got), n/5)
	}
	for i, s := range got {
		if s != uint64(5*(i+1)) {
			t.Fatalf("match %d: got seq %d, want %d", i, s, 5*(i+1))
		}
	}
	if src.read != n {
		t.Errorf("read %d entries over %d pages, want each of %d once", src.read, pages, n)
	}
}

func TestAuditFilterValidate(t *testing.T) {
	t0 := time.Unix(100, 0)
	tests := []struct {
		name string
		f    compliance.AuditFilter
		want string
	}{
		{"limit too big", compliance.AuditFilter{Limit: compliance.MaxAuditLimit + 1}, "limit 1001"},
		{"negative limit", compliance.AuditFilter{Limit: -1}, "limit -1"},
		{"empty range", compliance.AuditFilter{Since: t0, Until: t0}, "is not before until"},
		{"clear identifier", compliance.AuditFilter{Identifier: "alice@example.com"}, "hmac-sha256:"},
		{"upper-case hex", compliance.AuditFilter{Identifier: strings.ToUpper(hmacA)}, "hmac-sha256:"},
		{"short hex", compliance.AuditFilter{Identifier: hmacA[:70]}, "64 lower-case hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if !errors.Is(err, compliance.ErrBadFilter) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrBadFilter containing %q", err, tt.want)
			}
			if _, err := compliance.QueryAudit(context.Background(), &memSource{}, tt.f); !errors.Is(err, compliance.ErrBadFilter) {
				t.Errorf("QueryAudit: got %v, want ErrBadFilter", err)
			}
		})
	}
}

func TestCheckpointsWire(t *testing.T) {
	cps, err := compliance.Checkpoints(context.Background(), &memSource{})
	if err != nil {
		t.Fatal(err)
	}
	want := compliance.AuditCheckpoint{LogID: "log", Seq: 2, Hash: "01" + strings.Repeat("00", 31), Time: time.Unix(5, 0).UTC(), Signature: "//4="}
	if len(cps) != 1 || cps[0] != want {
		t.Errorf("got %+v, want %+v", cps, want)
	}
}

// fakeQuerier answers QueryAuditEntries from fixed entries and a fixed last
// seq, recording the window it was asked for.
type fakeQuerier struct {
	memSource
	got     []audit.Entry
	last    uint64
	after   uint64
	upTo    uint64
	limitIn int
}

func (q *fakeQuerier) QueryAuditEntries(_ context.Context, f compliance.AuditFilter, upTo uint64) ([]audit.Entry, uint64, error) {
	q.after, q.upTo, q.limitIn = f.After, upTo, f.Limit
	return q.got, q.last, nil
}

func TestQueryAuditInStore(t *testing.T) {
	e := func(seqs ...uint64) []audit.Entry {
		var out []audit.Entry
		for _, s := range seqs {
			out = append(out, audit.Entry{Seq: s})
		}
		return out
	}
	w := uint64(compliance.MaxAuditScan)
	tests := []struct {
		name        string
		f           compliance.AuditFilter
		got         []audit.Entry
		last        uint64
		wantNext    uint64
		wantScanned int
		wantErr     string
	}{
		{"page full", compliance.AuditFilter{After: 10, Limit: 2}, e(12, 15), 900, 15, 5, ""},
		{"window full", compliance.AuditFilter{After: 10, Limit: 5}, e(12), 10 + w, 10 + w, int(w), ""},
		{"end of log", compliance.AuditFilter{After: 10, Limit: 5}, e(12, 13), 40, 0, 30, ""},
		{"empty log", compliance.AuditFilter{}, nil, 0, 0, 0, ""},
		{"default limit", compliance.AuditFilter{}, nil, 3, 0, 3, ""},
		{"seq not increasing", compliance.AuditFilter{Limit: 5}, e(3, 3), 9, 0, 0, "seq 3 after 3"},
		{"seq before cursor", compliance.AuditFilter{After: 5, Limit: 5}, e(5), 9, 0, 0, "seq 5 after 5"},
		{"seq past window", compliance.AuditFilter{Limit: 5}, e(w + 1), w + 1, 0, 0, "in window"},
		{"too many", compliance.AuditFilter{Limit: 1}, e(1, 2), 2, 0, 0, "2 entries for a page of 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQuerier{got: tt.got, last: tt.last}
			p, err := compliance.QueryAudit(context.Background(), q, tt.f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Next != tt.wantNext || p.Scanned != tt.wantScanned || len(p.Entries) != len(tt.got) {
				t.Errorf("got next %d scanned %d entries %d, want %d, %d, %d", p.Next, p.Scanned, len(p.Entries), tt.wantNext, tt.wantScanned, len(tt.got))
			}
			wantLimit := tt.f.Limit
			if wantLimit == 0 {
				wantLimit = compliance.DefaultAuditLimit
			}
			if q.after != tt.f.After || q.upTo != tt.f.After+w || q.limitIn != wantLimit {
				t.Errorf("store asked for (%d, %d] limit %d, want (%d, %d] limit %d", q.after, q.upTo, q.limitIn, tt.f.After, tt.f.After+w, wantLimit)
			}
		})
	}
}
