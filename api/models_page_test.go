package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/api/apiclient"
)

// publishVersions adds model versions 2..n to the registry of f's store,
// copies of version 1 (a round publishing each would take a round each).
func publishVersions(t *testing.T, f *realFixture, n int) {
	t.Helper()
	ctx := t.Context()
	err := f.store.(aggregator.Store).InTx(ctx, func(tx aggregator.Tx) error {
		base, err := tx.Model(ctx, 1)
		if err != nil {
			return err
		}
		for v := 2; v <= n; v++ {
			m := base
			m.Version, m.Parent, m.Round = v, v-1, fmt.Sprintf("r%d", v)
			if ok, err := tx.InsertModel(ctx, m); err != nil || !ok {
				return fmt.Errorf("insert version %d: %v %w", v, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestModelsPaged: GET /v1/models listed every version ever published on
// every call. Over a real server on loopback and SQLite with 1234 versions,
// the default page is 100, the cursor walks them all exactly once in order
// (apiclient.Models follows it), limit 1 and 1000 are the bounds, and bad
// values are 400 problems naming the parameter. On PostgreSQL too when
// KAIROS_TEST_POSTGRES_URL is set, in a fresh database.
func TestModelsPaged(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testModelsPaged(t, "") })
	t.Run("postgres", func(t *testing.T) {
		base := os.Getenv("KAIROS_TEST_POSTGRES_URL")
		if base == "" {
			t.Skip("KAIROS_TEST_POSTGRES_URL is not set")
		}
		testModelsPaged(t, freshPostgresDB(t, base))
	})
}

func testModelsPaged(t *testing.T, dbURL string) {
	const n = 1234
	// The walks below make some 1,400 admin requests at once: the
	// admin's request rate (round 8 row 14) is lifted for them.
	f := newRealFixtureWith(t, dbURL, realPolicy, nil, aggregator.RoundConfig{Quorum: 1, Deadline: time.Hour}, Options{OverseerRate: 1e9, OverseerBurst: 1 << 20})
	publishVersions(t, f, n)
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	ctx := t.Context()
	admin, err := apiclient.New(ts.URL, f.tokens["admin"])
	if err != nil {
		t.Fatal(err)
	}

	first, err := admin.ModelPage(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Models) != aggregator.DefaultModelLimit || first.Models[0].Version != 1 || first.Next != int64(aggregator.DefaultModelLimit) {
		t.Errorf("first page: got %d versions from %d, next %d; want %d from 1, next %d",
			len(first.Models), first.Models[0].Version, first.Next, aggregator.DefaultModelLimit, aggregator.DefaultModelLimit)
	}

	for _, limit := range []int{1, 7, aggregator.MaxModelLimit} {
		var seen []int
		var after int64
		pages := 0
		for {
			p, err := admin.ModelPage(ctx, after, limit)
			if err != nil {
				t.Fatalf("limit %d after %d: %v", limit, after, err)
			}
			pages++
			if len(p.Models) > limit {
				t.Fatalf("limit %d: got a page of %d", limit, len(p.Models))
			}
			for _, m := range p.Models {
				seen = append(seen, m.Version)
			}
			if p.Next == 0 {
				break
			}
			after = p.Next
		}
		if wantPages := (n + limit - 1) / limit; pages != wantPages {
			t.Errorf("limit %d: got %d pages, want %d", limit, pages, wantPages)
		}
		if len(seen) != n {
			t.Fatalf("limit %d: got %d versions, want %d", limit, len(seen), n)
		}
		for i, v := range seen {
			if v != i+1 {
				t.Fatalf("limit %d: version %d at position %d, want %d (each once, oldest first)", limit, v, i, i+1)
			}
		}
	}

	all, err := admin.Models(ctx)
	if err != nil || len(all) != n || all[n-1].Version != n || !all[0].Active {
		t.Errorf("apiclient Models: %d versions, %v; want all %d with version 1 active", len(all), err, n)
	}

	last, err := admin.ModelPage(ctx, n-3, aggregator.MaxModelLimit)
	if err != nil || len(last.Models) != 3 || last.Next != 0 {
		t.Errorf("last page: %d versions, next %d, %v; want 3 and no next", len(last.Models), last.Next, err)
	}
	// An exactly full last page says there is no next one.
	exact, err := admin.ModelPage(ctx, n-5, 5)
	if err != nil || len(exact.Models) != 5 || exact.Next != 0 {
		t.Errorf("exactly full last page: %d versions, next %d, %v; want 5 and no next", len(exact.Models), exact.Next, err)
	}

	for _, tc := range []struct {
		query string
		code  int
		param string // named in the problem's detail
		count int    // versions listed when 200
	}{
		{"after=18446744073709551615", 200, "", 0},
		{"after=9223372036854775808", 200, "", 0},
		{"after=0&limit=1000", 200, "", 1000},
		{"limit=1", 200, "", 1},
		{"after=18446744073709551616", 400, "after", 0},
		{"after=-1", 400, "after", 0},
		{"after=x", 400, "after", 0},
		{"after=", 400, "after", 0},
		{"limit=0", 400, "limit", 0},
		{"limit=1001", 400, "limit", 0},
		{"limit=-5", 400, "limit", 0},
		{"limit=%2B5", 400, "limit", 0},
		{"limit=99999999999999999999", 400, "limit", 0},
		{"limit=1&limit=2", 400, "limit", 0},
		{"page=2", 400, "page", 0},
	} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v1/models?"+tc.query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+f.tokens["m1"])
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.code {
			t.Errorf("?%s: got %d %s, want %d", tc.query, resp.StatusCode, body, tc.code)
			continue
		}
		if tc.code != 200 {
			var p struct{ Type, Detail string }
			if err := json.Unmarshal(body, &p); err != nil || !strings.HasSuffix(p.Type, "invalid-request") || !strings.Contains(p.Detail, tc.param) {
				t.Errorf("?%s: got problem %s, want invalid-request naming %q", tc.query, body, tc.param)
			}
			continue
		}
		var l modelList
		if err := json.Unmarshal(body, &l); err != nil || len(l.Models) != tc.count {
			t.Errorf("?%s: got %d versions (%v), want %d", tc.query, len(l.Models), err, tc.count)
		}
	}
}
