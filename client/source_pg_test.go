package client

import (
	"context"
	"crypto/rand"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kairos-fl/kairos/crypto/pseudonym"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

func TestDBEvent(t *testing.T) {
	at := time.Date(1998, 3, 1, 12, 0, 0, 0, time.FixedZone("EST", -5*3600))
	five, neg, inf, huge, max := 5.0, -1.0, math.Inf(1), 1e13, model.MaxAmount
	for _, tc := range []struct {
		name, customer, kind string
		amount               *float64
		want                 model.Event
		wantErr              string
	}{
		{"purchase", "c1", "purchase", &five, model.Event{Customer: "c1", Time: at.UTC(), Kind: model.Purchase, Amount: 5, HasAmount: true}, ""},
		{"view without amount", "c2", "view", nil, model.Event{Customer: "c2", Time: at.UTC(), Kind: model.View}, ""},
		{"empty customer", "", "view", nil, model.Event{}, "empty customer"},
		{"unknown kind", "c3", "refund", nil, model.Event{}, "kind"},
		{"negative amount", "c4", "purchase", &neg, model.Event{}, "amount"},
		// A numeric or float column can hold 'Infinity' and amounts no file
		// reader accepts (model.MaxAmount): refused the same way, not saturated
		// silently by the feature builder.
		{"infinite amount", "c5", "purchase", &inf, model.Event{}, "amount"},
		{"amount above the maximum", "c6", "purchase", &huge, model.Event{}, "amount"},
		{"amount at the maximum", "c7", "purchase", &max, model.Event{Customer: "c7", Time: at.UTC(), Kind: model.Purchase, Amount: model.MaxAmount, HasAmount: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dbEvent(tc.customer, at, tc.kind, tc.amount)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestLoadEventsPostgres reads events with a query against a fresh database on
// the server of KAIROS_TEST_POSTGRES_URL.
func TestLoadEventsPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.URL(t)
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(ctx, `CREATE TABLE orders (shopper text, at timestamptz, what text, total numeric(10,2));
		INSERT INTO orders VALUES
		  ('alice', '1998-01-02 10:00+00', 'purchase', 12.50),
		  ('bob',   '1998-01-03 11:00+01', 'view', NULL),
		  ('alice', '1998-02-01 09:30+00', 'cart', NULL)`)
	db.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("pg.yaml", t.TempDir(), []byte(`aggregator: http://127.0.0.1:1
keys_dir: k
token_file: t
epsilon_cap: 1
state_dir: s
data:
  format: postgres
  postgres:
    url: `+dsn+`
    query: SELECT shopper, at, what, total FROM orders ORDER BY at
`))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pseudonym.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := LoadEvents(ctx, cfg, SourceOptions{Pseudonym: key, KeepIDs: true})
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := pseudonym.New(key, 0)
	want := []model.Event{
		{Customer: ps.Pseudonym("alice"), Time: time.Date(1998, 1, 2, 10, 0, 0, 0, time.UTC), Kind: model.Purchase, Amount: 12.5, HasAmount: true},
		{Customer: ps.Pseudonym("bob"), Time: time.Date(1998, 1, 3, 10, 0, 0, 0, time.UTC), Kind: model.View},
		{Customer: ps.Pseudonym("alice"), Time: time.Date(1998, 2, 1, 9, 30, 0, 0, time.UTC), Kind: model.Cart},
	}
	if len(ds.Events) != len(want) {
		t.Fatalf("got %d events, want %d", len(ds.Events), len(want))
	}
	for i := range want {
		if !ds.Events[i].Time.Equal(want[i].Time) {
			t.Errorf("event %d: time %v, want %v", i, ds.Events[i].Time, want[i].Time)
		}
		ds.Events[i].Time = want[i].Time
		if ds.Events[i] != want[i] {
			t.Errorf("event %d: got %+v, want %+v", i, ds.Events[i], want[i])
		}
	}
	if ds.IDs[ps.Pseudonym("bob")] != "bob" {
		t.Errorf("id map: got %v", ds.IDs)
	}
}
