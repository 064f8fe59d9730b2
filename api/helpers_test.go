package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
)

// fixture is a server with tokens for every role.
type fixture struct {
	srv    *Server
	issuer *auth.Issuer
	jwks   []auth.PublicKey
	tokens map[string]string // by name: admin, m1, m2, partner, compliance, expired, foreign
	// merchant keys and the aggregator's recipient, for sealing envelopes
	merchantKeys map[string]ed25519.PrivateKey
	recipient    age.Recipient
}

// tokenNames lists the callers of the route × role matrix.
var tokenNames = []string{"none", "garbage", "expired", "foreign", "admin", "m1", "partner", "compliance"}

func newIssuer(t testing.TB) (*auth.Issuer, auth.SigningKey, auth.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := auth.SigningKey{ID: keys.KeyID(pub), Private: priv}
	iss, err := auth.NewIssuer(auth.IssuerOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return iss, key, auth.PublicKey{ID: key.ID, Key: pub}
}

func issue(t testing.TB, iss *auth.Issuer, g auth.Grant) string {
	t.Helper()
	tok, _, err := iss.Issue(g)
	if err != nil {
		t.Fatalf("issue %+v: %v", g, err)
	}
	return tok
}

// newFixture builds a Server over svc with opts' zero fields filled in.
func newFixture(t testing.TB, svc Service, opts Options) *fixture {
	t.Helper()
	iss, key, pub := newIssuer(t)
	// The same key two hours ago: its one-hour tokens have expired.
	oldIss, err := auth.NewIssuer(auth.IssuerOptions{Key: key, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	foreignIss, _, _ := newIssuer(t)
	v, err := auth.NewVerifier(auth.VerifierOptions{
		Keys: []auth.PublicKey{pub}, Issuer: auth.DefaultIssuer, Audience: auth.DefaultAudience,
		Revocations: auth.NewMemoryRevocations(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Service = svc
	opts.Verifier = v
	opts.Issuer = iss
	opts.JWKS = []auth.PublicKey{pub}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{srv: srv, issuer: iss, jwks: opts.JWKS, merchantKeys: map[string]ed25519.PrivateKey{}}
	f.tokens = map[string]string{
		"none":       "",
		"garbage":    "not.a.jwt",
		"expired":    issue(t, oldIss, auth.Grant{Subject: "ops", Role: auth.RoleAdmin, TTL: time.Hour}),
		"foreign":    issue(t, foreignIss, auth.Grant{Subject: "ops", Role: auth.RoleAdmin, TTL: time.Hour}),
		"admin":      issue(t, iss, auth.Grant{Subject: "ops", Role: auth.RoleAdmin, TTL: time.Hour}),
		"m1":         issue(t, iss, auth.Grant{Subject: "m1", Role: auth.RoleMerchant, Merchants: []string{"m1"}, TTL: time.Hour}),
		"m2":         issue(t, iss, auth.Grant{Subject: "m2", Role: auth.RoleMerchant, Merchants: []string{"m2"}, TTL: time.Hour}),
		"partner":    issue(t, iss, auth.Grant{Subject: "crm", Role: auth.RolePartner, Merchants: []string{"m1"}, TTL: time.Hour}),
		"compliance": issue(t, iss, auth.Grant{Subject: "audit", Role: auth.RoleCompliance, TTL: time.Hour}),
	}
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	f.recipient, err = keys.ParseRecipient(agg.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m2"} {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		f.merchantKeys[id] = priv
	}
	return f
}

// envelope seals a small payload from merchant for round.
func (f *fixture) envelope(t testing.TB, merchant, round string) []byte {
	t.Helper()
	key, ok := f.merchantKeys[merchant]
	if !ok {
		t.Fatalf("no key for merchant %q", merchant)
	}
	h := seal.Header{MerchantID: merchant, Round: round, ModelVersion: "1", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		t.Fatal(err)
	}
	env, err := seal.Seal(rand.Reader, h, []byte(`{"version":1}`), key, f.recipient)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return env
}

// do sends one request through the server and returns the recorder.
func (f *fixture) do(t testing.TB, method, path, token, contentType string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

// problemOf decodes a problem body and checks its media type and status member.
func problemOf(t *testing.T, rec *httptest.ResponseRecorder) problemDoc {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %s)", ct, rec.Body)
	}
	var p problemDoc
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode problem: %v", err)
	}
	if p.Status != rec.Code {
		t.Errorf("problem status %d, response status %d", p.Status, rec.Code)
	}
	if p.Title != http.StatusText(rec.Code) {
		t.Errorf("problem title %q, want %q", p.Title, http.StatusText(rec.Code))
	}
	return p
}

// fakeService implements Service in memory. Its only use is to inject faults
// (err) that a real aggregator cannot be made to produce on demand.
type fakeService struct {
	mu        sync.Mutex
	err       error // returned by every method when set
	merchants []aggregator.Merchant
	submits   []string // merchant ids of Submit calls
	actors    []string
	budgets   []aggregator.Budget
	rounds    map[protocol.RoundState]int
}

var _ RoundCounter = (*fakeService)(nil)

func (s *fakeService) fail() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *fakeService) Enrol(_ context.Context, actor string, m aggregator.Merchant) (aggregator.Merchant, error) {
	if err := s.fail(); err != nil {
		return aggregator.Merchant{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m.EnrolledAt = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s.merchants = append(s.merchants, m)
	s.actors = append(s.actors, actor)
	return m, nil
}

func (s *fakeService) Merchants(context.Context) ([]aggregator.Merchant, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]aggregator.Merchant(nil), s.merchants...), nil
}

func (s *fakeService) CurrentRound(_ context.Context, merchantID string) (protocol.Round, error) {
	if err := s.fail(); err != nil {
		return protocol.Round{}, err
	}
	return protocol.Round{ID: "r1", Seq: 1, State: protocol.RoundOpen, Selected: merchantID == "m1", Quorum: 2}, nil
}

func (s *fakeService) Submit(_ context.Context, merchantID string, _ []byte) (protocol.Receipt, error) {
	if err := s.fail(); err != nil {
		return protocol.Receipt{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.submits = append(s.submits, merchantID)
	return protocol.Receipt{UpdateID: "u1", Round: "r1", Merchant: merchantID, Epsilon: 0.25, Delta: 1e-6, EpsilonCap: 1}, nil
}

func (s *fakeService) ModelPage(context.Context, int64, int) ([]protocol.ModelVersion, int64, error) {
	if err := s.fail(); err != nil {
		return nil, 0, err
	}
	return []protocol.ModelVersion{{Version: 1, Active: true}}, 0, nil
}

func (s *fakeService) Model(_ context.Context, version int) (protocol.ModelVersion, error) {
	if err := s.fail(); err != nil {
		return protocol.ModelVersion{}, err
	}
	if version > 1 {
		return protocol.ModelVersion{}, aggregator.ErrNotFound
	}
	return protocol.ModelVersion{Version: 1, Active: true}, nil
}

func (s *fakeService) Rollback(_ context.Context, actor string, version int) error {
	if err := s.fail(); err != nil {
		return err
	}
	if version > 1 {
		return aggregator.ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actors = append(s.actors, actor)
	return nil
}

func (s *fakeService) Budgets(context.Context) ([]aggregator.Budget, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]aggregator.Budget(nil), s.budgets...), nil
}

func (s *fakeService) RoundCounts(context.Context) (map[protocol.RoundState]int, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.rounds, nil
}
