package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store"
)

// realAuditFixture is a predict fixture whose audit log is the real one on
// SQLite (which refuses text that is not UTF-8 or holds NUL), and that store.
func realAuditFixture(t *testing.T) (*predictFixture, store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "kairos.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_, signer, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	alog, err := audit.New(ctx, audit.Options{Store: st, HMACKey: bytes.Repeat([]byte{0x5a}, 32), SigningKey: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	return newPredictFixture(t, PredictOptions{Audit: alog}), st
}

// TestPredictAuditObjectBounded: the merchant a predict names is the
// caller's text, and the audit entry's object quoted it whole. A partner
// naming a merchant of 200 kB (refused 403) wrote 200 kB to the append-only
// log per request; one naming "\u0000" or a merchant the log cannot hold was
// answered 503 with no entry at all. The object is bounded, and every such
// request leaves its denied entry.
func TestPredictAuditObjectBounded(t *testing.T) {
	f, st := realAuditFixture(t)
	ctx := context.Background()
	for i, merchant := range []string{
		strings.Repeat("m", 200_000),
		"m\u0000",
		"m1\u0000",
		strings.Repeat("é", 5000),
	} {
		body := mustJSON(t, PredictRequest{Merchant: merchant, Customer: "c-1", Features: featureVec(1, 1)})
		rec := f.do(t, "POST", "/v1/predict", f.tokens["partner"], "application/json", body)
		if rec.Code != 403 {
			t.Errorf("merchant %d (%d bytes): got %d, want 403: %.200s", i, len(merchant), rec.Code, rec.Body)
		}
		es, err := st.AuditEntries(ctx, uint64(i+1), 1)
		if err != nil || len(es) != 1 {
			t.Fatalf("merchant %d (%d bytes): audit entry %d: %v (%d entries), want the denied call", i, len(merchant), i+1, err, len(es))
		}
		e := es[0]
		if e.Outcome != audit.OutcomeDenied || !strings.HasPrefix(e.Object, "merchant/") {
			t.Errorf("merchant %d: entry %+v, want a denied predict on a merchant object", i, e)
		}
		if n := len(e.Object) + len(e.Reason); n > 2048 {
			t.Errorf("merchant %d (%d bytes): the entry's object and reason hold %d bytes, want a bounded entry", i, len(merchant), n)
		}
	}
}
