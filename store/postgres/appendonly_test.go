package postgres

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/storetest"
)

func TestAuditTablesAppendOnly(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	es, cps := storetest.Chain(audit.Head{}, 4, 2, storeTestTime)
	if err := s.AppendAudit(ctx, es, cps); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE audit_entries SET actor = 'admin:mallory' WHERE seq = 2`,
		`DELETE FROM audit_entries WHERE seq = 4`,
		`TRUNCATE audit_entries`,
		`UPDATE audit_checkpoints SET signature = '\x00' WHERE seq = 2`,
		`DELETE FROM audit_checkpoints`,
		`TRUNCATE audit_checkpoints`,
	} {
		_, err := s.pool.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: err = %v, want SQLSTATE 42501 from the append-only trigger", q, err)
		}
	}
	res, err := audit.Verify(ctx, s, storetest.Key().Public().(ed25519.PublicKey))
	if err != nil || res.Entries != 4 || res.Checkpoints != 2 {
		t.Errorf("Verify after refused tampering = %+v, %v; want 4 entries, 2 checkpoints", res, err)
	}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "40001"}, true},
		{fmt.Errorf("append: %w", &pgconn.PgError{Code: "40P01"}), true},
		{&pgconn.PgError{Code: "23505"}, false},
		{errors.New("40001"), false},
		{nil, false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestInTxRetriesSerializationFailures makes two serializable transactions
// conflict and checks that inTx reruns the loser to success.
func TestInTxRetriesSerializationFailures(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if _, err := s.pool.Exec(ctx, `CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		attempts++
		if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
			return err
		}
		if attempts == 1 { // a concurrent writer commits between our read and write
			if _, err := s.pool.Exec(ctx, `UPDATE counter SET n = n + 10`); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE counter SET n = $1`, n+1)
		return err
	})
	if err != nil {
		t.Fatalf("inTx: %v", err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || n != 11 {
		t.Errorf("attempts %d, counter %d; want 2 attempts and 11 (the rerun saw the concurrent +10)", attempts, n)
	}
}

// BenchmarkAppendParallel measures durable appends per second through
// audit.Log (group commit) from 32 goroutines.
func BenchmarkAppendParallel(b *testing.B) {
	ctx := context.Background()
	s := openTest(b)
	l, err := audit.New(ctx, audit.Options{Store: s, HMACKey: storetest.HMACKey, SigningKey: storetest.Key()})
	if err != nil {
		b.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((32 + procs - 1) / procs)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(ctx, audit.Record{Actor: "merchant:m-1", Action: "update.submit", Object: "round/1",
				Outcome: audit.OutcomeOK, Identifiers: map[string]string{"customer": "c-1"}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	st := l.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	b.ReportMetric(float64(st.Entries)/float64(max(st.Batches, 1)), "entries/tx")
}

// BenchmarkVerify100k verifies a 100,000-entry log read from PostgreSQL
// (checkpoints every 1,000).
func BenchmarkVerify100k(b *testing.B) {
	ctx := context.Background()
	s := openTest(b)
	es, cps := storetest.Chain(audit.Head{}, 100_000, 1000, storeTestTime)
	for i := 0; i < len(es); i += 10_000 {
		if err := s.AppendAudit(ctx, es[i:i+10_000], cps[i/1000:i/1000+10]); err != nil {
			b.Fatal(err)
		}
	}
	pub := storetest.Key().Public().(ed25519.PublicKey)
	b.ResetTimer()
	for b.Loop() {
		res, err := audit.Verify(ctx, s, pub)
		if err != nil || res.Entries != 100_000 || res.Checkpoints != 100 {
			b.Fatalf("Verify = %+v, %v", res, err)
		}
	}
}

// TestAuditRewritesRefused: every SQL path that would change a stored entry
// or checkpoint in place is refused, also with ordinary triggers switched
// off by session_replication_role.
func TestAuditRewritesRefused(t *testing.T) {
	storetest.RunRewrites(t, func(t *testing.T) (storetest.Store, storetest.Exec) {
		s := openTest(t)
		return s, func(ctx context.Context, q string) error {
			_, err := s.pool.Exec(ctx, q)
			return err
		}
	}, storetest.PostgresRewrites)
}
