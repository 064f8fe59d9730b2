package aggregator_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSecureCuriousAggregator plays an aggregator that reads everything it
// holds after a secure round — every byte of its database (for SQLite the
// database file, its WAL and shared memory, free pages and old row versions
// included; for PostgreSQL every row of every table), its audit log and its
// logs at debug level — and looks for any merchant's input, the encoding it
// masked, in its two byte orders. None may be there, while the aggregate the
// round published (the unmasked sum, which is public) is: the search itself
// finds what is stored. (That the protocol's messages let no aggregator
// isolate one input, even keeping every masked input, is secagg's
// TestCuriousAggregator.)
func TestSecureCuriousAggregator(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			var logs bytes.Buffer
			sr := playSecure(t, b, playOpts{logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			var stored []byte
			switch {
			case b.dir != "":
				files, err := filepath.Glob(filepath.Join(b.dir, "*"))
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range files {
					data, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					stored = append(stored, data...)
				}
			case b.dsn != nil:
				stored = dumpPostgres(t, b.dsn())
			}
			es, err := sr.replica.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			audited, err := json.Marshal(es)
			if err != nil {
				t.Fatal(err)
			}
			holds := func(haystack []byte, words []uint32) bool {
				be, le := make([]byte, 0, 4*len(words)), make([]byte, 0, 4*len(words))
				for _, w := range words {
					be, le = binary.BigEndian.AppendUint32(be, w), binary.LittleEndian.AppendUint32(le, w)
				}
				for _, pat := range [][]byte{be, le} {
					if bytes.Contains(haystack, pat) || bytes.Contains(haystack, []byte(hex.EncodeToString(pat))) {
						return true
					}
				}
				return false
			}
			if len(sr.inputs) != 6 {
				t.Fatalf("%d inputs recorded, want 6", len(sr.inputs))
			}
			for m, x := range sr.inputs {
				for what, h := range map[string][]byte{"database": stored, "audit log": audited, "logs": logs.Bytes()} {
					if holds(h, x) {
						t.Errorf("%s's input is in the aggregator's %s", m, what)
					}
				}
			}
			// The control: the aggregate is stored (fed_secure_rounds.result).
			sum := make([]uint32, len(sr.inputs["m1"]))
			for _, m := range []string{"m1", "m2", "m3", "m4", "m5"} {
				for j, w := range sr.inputs[m] {
					sum[j] = (sum[j] + w) & (1<<sr.plan.Params.Bits - 1)
				}
			}
			if !holds(stored, sum) {
				t.Error("the published aggregate is not found in the database: the search finds nothing")
			}
			if logs.Len() == 0 {
				t.Error("no logs captured")
			}
		})
	}
}

// dumpPostgres returns every row of every table of the database at dsn as
// JSON text (bytea columns as hex).
func dumpPostgres(t *testing.T, dsn string) []byte {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, tbl := range tables {
		rows, err := conn.Query(ctx, `SELECT row_to_json(t)::text FROM `+pgx.Identifier{tbl}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			out = append(out, s...)
		}
	}
	if len(tables) < 10 {
		t.Fatalf("%d tables dumped", len(tables))
	}
	return out
}
