package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/policies"
)

// split builds a split of the given merchant sizes (no customers).
func split(sizes ...int) *sim.Split {
	sp := &sim.Split{Name: "cdnow-100", Seed: 1, Owner: map[string]int{}}
	for _, c := range sizes {
		sp.Merchants = append(sp.Merchants, sim.SplitMerchant{Customers: c})
	}
	return sp
}

// TestPick checks the rule on a hand-made split: the two largest, then in the
// split's order the first four of 60..99, three of 100..299 and one of
// 300..999, skipping merchants below 60.
func TestPick(t *testing.T) {
	//              0   1   2    3   4   5    6    7     8   9   10  11   12   13   14    15
	sp := split(300, 59, 99, 2000, 60, 10, 150, 120, 1500, 80, 70, 65, 299, 100, 999, 3000)
	got, err := Pick(sp)
	if err != nil {
		t.Fatal(err)
	}
	// Largest: 15 (3000), 3 (2000). Small: 2, 4, 9, 10. Medium: 6, 7, 12.
	// Large (300..999): 0.
	want := []int{0, 2, 3, 4, 6, 7, 9, 10, 12, 15}
	if !slices.Equal(got, want) {
		t.Errorf("Pick: got %v, want %v", got, want)
	}
	if _, err := Pick(split(3000, 2000, 80, 150)); err == nil || !strings.Contains(err.Error(), "60 to 99") {
		t.Errorf("too few small merchants: got %v, want an error naming the 60 to 99 range", err)
	}
}

// TestPickCDNOW100 pins the demo's merchants on the real split (seed 1) and
// checks they cover every size bucket.
func TestPickCDNOW100(t *testing.T) {
	ev := cdnow(t)
	full, err := sim.SplitCDNOW100(ev, 1)
	if err != nil {
		t.Fatal(err)
	}
	picked, err := Pick(full)
	if err != nil {
		t.Fatal(err)
	}
	buckets := map[string]int{}
	for _, i := range picked {
		c := full.Merchants[i].Customers
		if c < MinCustomers {
			t.Errorf("merchant %d: %d customers, below %d", i, c, MinCustomers)
		}
		buckets[bucket(c)]++
	}
	for _, b := range sim.SizeBuckets {
		if buckets[b.Name] == 0 {
			t.Errorf("no merchant in bucket %s: %v", b.Name, buckets)
		}
	}
	t.Logf("picked %v: %v", picked, buckets)
}

func cdnow(t *testing.T) []model.Event {
	t.Helper()
	path := filepath.Join("..", "..", "..", "shared", "data", "cdnow", "CDNOW_master.txt")
	if d := os.Getenv("KAIROS_DATA"); d != "" {
		path = filepath.Join(d, "cdnow", "CDNOW_master.txt")
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CDNOW_master.txt: %v", err)
		}
		t.Skipf("CDNOW_master.txt not found: %v", err)
	}
	ev, err := sim.LoadCDNOW(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestWriteShards: each merchant's file, read back by the client's own
// reader, holds exactly the lines of its customers, in the source's order.
func TestWriteShards(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "CDNOW_master.txt")
	lines := []string{
		" customer_id  date number_of_cds  dollar_value\r",
		" 00001 19970101  1   11.77\r",
		" 00002 19970112  1   12.00\r",
		" 00003 19970102  2   20.76\r",
		" 00001 19970304  2   29.33\r",
		" 00004 19970115  1   13.97\r",
	}
	if err := os.WriteFile(src, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sp := &sim.Split{Owner: map[string]int{"00001": 0, "00003": 1, "00004": 0}, Merchants: make([]sim.SplitMerchant, 2)}
	paths := []string{filepath.Join(dir, "a", "orders.txt"), filepath.Join(dir, "b", "orders.txt")}
	if err := WriteShards(src, sp, paths); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"00001 1997-01-01 11.77", "00001 1997-03-04 29.33", "00004 1997-01-15 13.97"}, {"00003 1997-01-02 20.76"}}
	for m, p := range paths {
		var got []string
		if _, err := ingest.ReadFile(context.Background(), p, ingest.Options{Format: ingest.CDNOW}, func(e model.Event) error {
			got = append(got, fmt.Sprintf("%s %s %.2f", e.Customer, e.Time.Format("2006-01-02"), e.Amount))
			return nil
		}); err != nil {
			t.Fatalf("merchant %d: %v", m, err)
		}
		if !slices.Equal(got, want[m]) {
			t.Errorf("merchant %d: got %q, want %q", m, got, want[m])
		}
	}
	if err := WriteShards(src, sp, paths[:1]); err == nil {
		t.Error("one path for two merchants: no error")
	}
	if err := WriteShards(filepath.Join(dir, "missing.txt"), sp, paths); err == nil {
		t.Error("missing source: no error")
	}
}

func TestSubset(t *testing.T) {
	sp := split(5, 6, 7)
	sp.Owner = map[string]int{"a": 0, "b": 1, "c": 2, "d": 2}
	sub := Subset(sp, []int{0, 2})
	wantOwner := map[string]int{"a": 0, "c": 1, "d": 1}
	if len(sub.Owner) != len(wantOwner) {
		t.Fatalf("owner %v, want %v", sub.Owner, wantOwner)
	}
	for c, m := range wantOwner {
		if sub.Owner[c] != m {
			t.Errorf("customer %s: merchant %d, want %d", c, sub.Owner[c], m)
		}
	}
	if len(sub.Merchants) != 2 || sub.Merchants[0].Customers != 5 || sub.Merchants[1].Customers != 7 {
		t.Errorf("merchants %+v, want sizes 5 and 7", sub.Merchants)
	}
}

// TestPolicy: the demo's policy parses, names every merchant, at ε = 1 and
// δ = 1e-6, and allows updates of one customer.
func TestPolicy(t *testing.T) {
	ids := []string{"shop-01", "shop-87"}
	p, err := policies.Parse("demo.yaml", Policy(ids))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		mp, err := p.Merchant(id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if mp.EpsilonCap != 1 || mp.Delta != 1e-6 || mp.MinCustomersPerUpdate != 1 {
			t.Errorf("%s: cap %v at δ %v, minimum %d customers; want 1, 1e-6, 1", id, mp.EpsilonCap, mp.Delta, mp.MinCustomersPerUpdate)
		}
	}
	if _, err := p.Merchant("shop-02"); err == nil {
		t.Error("a merchant not listed is in the policy")
	}
}

func TestRounds(t *testing.T) {
	r := Rounds(10)
	fo := sim.DefaultFedOptions()
	train, _ := sim.ReferenceCutoffs()
	if r.PlannedRounds != fo.Rounds || r.StepsPerRound != fo.Steps || r.SamplingRate != fo.SamplingRate ||
		r.LearningRate != fo.LearningRate || r.Server != fo.Server || r.Quorum != 10 || !slices.Equal(r.Cutoffs, train) {
		t.Errorf("rounds %+v do not follow the simulation's tuned plan %+v", r, fo)
	}
	if r.CountNoise != CountNoise {
		t.Errorf("count noise %v, want %v", r.CountNoise, CountNoise)
	}
}

func TestParseAuditEntries(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want int
		ok   bool
	}{
		{"OK: 328 entries, 2 checkpoints, head c350\n", 328, true},
		{"OK: 1 entries, 0 checkpoints, head x\nnote: entries 1..1 are chained but not yet covered\n", 1, true},
		{"audit verify: entry 3: hash mismatch\n", 0, false},
	} {
		n, ok := ParseAuditEntries(tc.out)
		if n != tc.want || ok != tc.ok {
			t.Errorf("%q: got %d, %v; want %d, %v", tc.out, n, ok, tc.want, tc.ok)
		}
	}
}

func TestWriteTable(t *testing.T) {
	r := Report{
		Scenario: "cdnow-100-demo", Seed: 1, TestCutoff: "1998-03-01", Rounds: 40, NoiseMultiplier: 5.225, Delta: 1e-6,
		EpsilonMax: 0.99971, TestCustomers: 350, Seconds: 30, AuditVerified: true, AuditEntries: 545,
		AUC30: sim.PooledAUC{Federated: 0.75, Centralized: 0.81, LocalOnlyPooled: 0.70, PersonalizedPooled: 0.72},
		BySize: []sim.BucketReport{
			{Bucket: "<100", Merchants: 1, Customers: 80, Trio: sim.Trio{LocalOnly: 0.6, Federated: 0.7, Personalized: 0.65}, PersonalizedGELocal: 1, Compared: 1},
			{Bucket: ">=1000", Merchants: 1, Customers: 270, Trio: sim.Trio{LocalOnly: 0.8, Federated: 0.75, Personalized: 0.8}, PersonalizedGELocal: 1, Compared: 1},
		},
		Merchants: []Merchant{
			{ID: "shop-01", Customers: 80, Rounds: 40, Releases: 41, Epsilon: 0.99971, EpsilonCap: 1,
				Own: sim.MerchantResult{TestCustomers: 80, Buyers: 3, Scored: true, AUC30: sim.Trio{LocalOnly: 0.6, Federated: 0.7, Personalized: 0.65}, Choice: "blend"}},
			{ID: "shop-87", Customers: 270, Own: sim.MerchantResult{TestCustomers: 270, Choice: "global"}},
		},
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"2 merchants drawn from the cdnow-100 split of CDNOW (seed 1, non-IID, 350 customers)",
		"40 rounds, DP-SGD z = 5.225, ε ≤ 0.9997",
		"+0.0500", // <100: personalised − local-only
		"3 / 80",
		"merchants with <100 customers: federated above local-only by +0.1000, personalised by +0.0500",
		"audit log verified: 545 entries",
		"centralised non-private model on the same merchants' customers pooled: 0.8100",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	r.BySize[0].Federated, r.AuditVerified = 0.5, false
	buf.Reset()
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NOT above local-only by -0.1000", "verification FAILED", "—"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// FuzzWriteShards: whatever the source file holds, WriteShards does not
// panic, and each merchant's file is the header line followed by exactly the
// source lines whose first field it owns, in order, ending in "\n" (a "\r"
// before it is dropped).
func FuzzWriteShards(f *testing.F) {
	f.Add([]byte(" customer_id  date number_of_cds  dollar_value\r\n 00001 19970101  1   11.77\r\n 00002 19970112  1   12.00\r\n"))
	f.Add([]byte("h\n\n   \nA x\nB y\nA z"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, src []byte) {
		dir := t.TempDir()
		in := filepath.Join(dir, "in.txt")
		if err := os.WriteFile(in, src, 0o600); err != nil {
			t.Fatal(err)
		}
		sp := &sim.Split{Owner: map[string]int{"A": 0, "00001": 0, "B": 1, "00002": 1}, Merchants: make([]sim.SplitMerchant, 2)}
		paths := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
		if err := WriteShards(in, sp, paths); err != nil {
			return // a line too long for the scanner is an error, not a panic
		}
		lines := strings.Split(strings.TrimSuffix(string(src), "\n"), "\n")
		for i := range lines {
			lines[i] = strings.TrimSuffix(lines[i], "\r")
		}
		for m, p := range paths {
			var want []string
			for i, l := range lines {
				if len(src) == 0 {
					break
				}
				if i == 0 {
					want = append(want, l)
					continue
				}
				if fs := strings.Fields(l); len(fs) > 0 && sp.Owner[fs[0]] == m {
					if _, ok := sp.Owner[fs[0]]; ok {
						want = append(want, l)
					}
				}
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(b) == 0 {
				got = nil
			}
			if !slices.Equal(got, want) {
				t.Fatalf("merchant %d: got %q, want %q", m, got, want)
			}
		}
	})
}
