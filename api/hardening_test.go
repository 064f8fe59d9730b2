package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
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

// FuzzAdminBodies posts arbitrary bytes to the console's state-changing
// routes (token issue, round cancel, merchant stop) over the real aggregator:
// every answer is a 2xx or a 4xx problem, never a panic or a 5xx, and an
// issued token never lives longer than its role's limit.
func FuzzAdminBodies(f *testing.F) {
	f.Add(uint8(0), []byte(`{"subject":"crm","role":"partner","merchants":["m1"],"ttl_seconds":3600}`))
	f.Add(uint8(0), []byte(`{"subject":"x","role":"admin","ttl_seconds":18446744134}`))
	f.Add(uint8(0), []byte(`{"subject":"m1","role":"merchant","merchants":["m1"],"ttl_seconds":1e308}`))
	f.Add(uint8(1), []byte(`{"round":"","reason":"because"}`))
	f.Add(uint8(1), []byte(`{"round":"../../etc/passwd"}`))
	f.Add(uint8(2), []byte(`{"reason":"cap","local_epsilon_cap":0.8,"local_delta":1e-6}`))
	f.Add(uint8(2), []byte(`{"local_epsilon_cap":1e999}`))
	f.Add(uint8(2), []byte(`{"local_delta":-0}`))
	fx := newRealFixture(f, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{})
	fx.srv.tokenAudit = fx.svc
	fx.srv.rounds = fx.svc
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path, token := "/v1/tokens", fx.tokens["admin"]
		switch route % 3 {
		case 1:
			path = "/v1/rounds:cancel"
		case 2:
			path, token = "/v1/merchants/me:stop", fx.tokens["m1"]
		}
		rec := fx.do(t, "POST", path, token, "application/json", body)
		switch {
		case rec.Code >= 200 && rec.Code < 300:
			if path != "/v1/tokens" {
				return
			}
			var it protocol.IssuedToken
			if err := json.Unmarshal(rec.Body.Bytes(), &it); err != nil {
				t.Fatalf("issued token answer: %v", err)
			}
			if limit := auth.DefaultMaxTTL(auth.Role(it.Role)); time.Until(it.ExpiresAt) > limit {
				t.Fatalf("issued %s token expires %v from now, limit %v", it.Role, time.Until(it.ExpiresAt), limit)
			}
		case rec.Code >= 400 && rec.Code < 500:
			problemOf(t, rec)
		default:
			t.Fatalf("%s: status %d for %q: %s", path, rec.Code, body, rec.Body)
		}
	})
}
