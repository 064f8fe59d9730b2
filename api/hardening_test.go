package api

import (
	"net/http"
	"strconv"
	"testing"
)

// TestIssueTokenTTLOverflow (hardening review, session 18): ttl_seconds was
// multiplied into a time.Duration before the comparison with the role's
// limit, so 18446744134 (2^64/10^9 + 60 s) wrapped to about 60 s and passed
// the check: the request was answered 201 although it asked for 585 years.
// Every ttl_seconds beyond the limit is now 400, whatever its size, and
// nothing is audited for it.
func TestIssueTokenTTLOverflow(t *testing.T) {
	f := auditFixture(t)
	f.srv.tokenAudit = f.svc
	before := len(stored(t, f))
	for _, ttl := range []string{"18446744134", "9223372037", "9223372036854775807", "2592001"} {
		body := []byte(`{"subject":"ops2","role":"admin","ttl_seconds":` + ttl + `}`)
		if rec := f.do(t, "POST", "/v1/tokens", f.tokens["admin"], "application/json", body); rec.Code != http.StatusBadRequest {
			t.Errorf("ttl_seconds %s: got %d, want 400: %s", ttl, rec.Code, rec.Body)
		}
	}
	if n := len(stored(t, f)); n != before {
		t.Errorf("refused issues wrote %d audit entries", n-before)
	}
	// The limit itself is still granted (30 days for admin tokens).
	body := []byte(`{"subject":"ops2","role":"admin","ttl_seconds":` + strconv.Itoa(30*24*3600) + `}`)
	if rec := f.do(t, "POST", "/v1/tokens", f.tokens["admin"], "application/json", body); rec.Code != http.StatusCreated {
		t.Errorf("ttl_seconds of 30 days: got %d, want 201: %s", rec.Code, rec.Body)
	}
}
