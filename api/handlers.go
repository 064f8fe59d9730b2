package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
)

// claims returns the verified claims; Middleware guarantees them on /v1.
func claims(r *http.Request) (*auth.Claims, error) {
	c, ok := auth.ClaimsFrom(r.Context())
	if !ok {
		return nil, errors.New("no verified claims behind the auth middleware")
	}
	return c, nil
}

// actor names the caller in the audit log: "role:subject".
func actor(c *auth.Claims) string { return string(c.Role) + ":" + c.Subject }

// merchantOf returns the merchant a merchant-role token is bound to.
func merchantOf(c *auth.Claims) (string, error) {
	if c.Role != auth.RoleMerchant || len(c.Merchants) != 1 || c.Merchants[0] != c.Subject {
		return "", &httpError{status: http.StatusForbidden, typ: typeForbidden, detail: "token is not bound to one merchant"}
	}
	return c.Subject, nil
}

func (s *Server) enrol(w http.ResponseWriter, r *http.Request) error {
	c, err := claims(r)
	if err != nil {
		return err
	}
	var req protocol.EnrolRequest
	if err := decodeJSON(w, r, s.maxJSON, &req); err != nil {
		return err
	}
	if err := checkEnrol(&req); err != nil {
		return err
	}
	m, err := s.svc.Enrol(r.Context(), actor(c), aggregator.Merchant{
		ID: req.ID, Region: req.Region, TimeZone: req.TimeZone, PublicKey: req.PublicKey,
	})
	if err != nil {
		return err
	}
	tok, tc, err := s.issuer.Issue(auth.Grant{Subject: m.ID, Role: auth.RoleMerchant, Merchants: []string{m.ID}, TTL: s.tokenTTL})
	if err != nil {
		return fmt.Errorf("enrol %s: merchant stored but token not issued: %w", m.ID, err)
	}
	w.Header().Set("Location", "/v1/merchants/"+m.ID)
	return writeJSON(w, http.StatusCreated, protocol.Enrolment{
		Merchant:       merchantInfo(m),
		Token:          tok,
		TokenExpiresAt: tc.ExpiresAt.UTC(),
	})
}

// checkEnrol validates an enrolment request before it reaches the service.
func checkEnrol(req *protocol.EnrolRequest) error {
	bad := func(format string, a ...any) error {
		return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: fmt.Sprintf(format, a...)}
	}
	if err := keys.CheckMerchantID(req.ID); err != nil {
		return bad("field \"id\": %v", err)
	}
	if req.TimeZone == "" {
		return bad("field \"time_zone\": required")
	}
	if _, err := time.LoadLocation(req.TimeZone); err != nil || req.TimeZone == "Local" {
		return bad("field \"time_zone\": unknown IANA time zone %q", req.TimeZone)
	}
	if len(req.Region) > 64 {
		return bad("field \"region\": longer than 64 bytes")
	}
	if len(req.PublicKey) != ed25519.PublicKeySize {
		return bad("field \"public_key\": %d bytes, want a %d-byte Ed25519 key (base64)", len(req.PublicKey), ed25519.PublicKeySize)
	}
	return nil
}

func merchantInfo(m aggregator.Merchant) protocol.MerchantInfo {
	return protocol.MerchantInfo{
		ID: m.ID, Region: m.Region, TimeZone: m.TimeZone, PublicKey: m.PublicKey,
		Revoked: m.Revoked, Stopped: m.Stopped, EnrolledAt: m.EnrolledAt.UTC(),
	}
}

func (s *Server) merchants(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.svc.Merchants(r.Context())
	if err != nil {
		return err
	}
	out := make([]protocol.MerchantInfo, 0, len(ms))
	for _, m := range ms {
		out = append(out, merchantInfo(m))
	}
	return writeJSON(w, http.StatusOK, merchantList{Merchants: out})
}

func (s *Server) currentRound(w http.ResponseWriter, r *http.Request) error {
	c, err := claims(r)
	if err != nil {
		return err
	}
	id, err := merchantOf(c)
	if err != nil {
		return err
	}
	round, err := s.svc.CurrentRound(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, round)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) error {
	rc, err := s.submitUpdate(w, r)
	if err != nil {
		s.metrics.updateRefused(classify(err).typ)
		return err
	}
	s.metrics.updateAccepted(rc)
	return writeJSON(w, http.StatusAccepted, rc)
}

func (s *Server) submitUpdate(w http.ResponseWriter, r *http.Request) (protocol.Receipt, error) {
	merchant, env, err := s.readEnvelope(w, r)
	if err != nil {
		return protocol.Receipt{}, err
	}
	return s.svc.Submit(r.Context(), merchant, env)
}

// readEnvelope reads a sealed envelope posted to /v1/rounds/{id}/…: the
// merchant of the token and the envelope, refused early when its header is for
// another round or another merchant. The header is parsed, not trusted, to
// route and to refuse what the token cannot submit; the service verifies the
// signature over it.
func (s *Server) readEnvelope(w http.ResponseWriter, r *http.Request) (string, []byte, error) {
	c, err := claims(r)
	if err != nil {
		return "", nil, err
	}
	merchant, err := merchantOf(c)
	if err != nil {
		return "", nil, err
	}
	if err := requireMediaType(r, "application/octet-stream"); err != nil {
		return "", nil, err
	}
	env, err := readBody(w, r, s.maxEnv)
	if err != nil {
		return "", nil, err
	}
	h, err := seal.ParseHeader(env)
	if err != nil {
		return "", nil, err
	}
	if round := mux.Vars(r)["id"]; h.Round != round {
		return "", nil, &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest,
			detail: fmt.Sprintf("envelope is for round %q but was posted to round %q", h.Round, round)}
	}
	if h.MerchantID != merchant {
		return "", nil, &httpError{status: http.StatusForbidden, typ: typeForbidden,
			detail: fmt.Sprintf("token of merchant %q may not submit an envelope of merchant %q", merchant, h.MerchantID)}
	}
	return merchant, env, nil
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) error {
	c, err := claims(r)
	if err != nil {
		return err
	}
	after, limit, err := modelPageQuery(r.URL.Query())
	if err != nil {
		return err
	}
	ms, next, err := s.svc.ModelPage(r.Context(), after, limit)
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []protocol.ModelVersion{}
	}
	for i := range ms {
		redactContributions(c, &ms[i])
	}
	return writeJSON(w, http.StatusOK, modelList{Models: ms, Next: next})
}

// modelPageQuery reads GET /v1/models's after and limit. An after beyond
// any version (up to 2^64-1) is clamped: the page is empty, not an error.
func modelPageQuery(q url.Values) (after int64, limit int, err error) {
	bad := func(format string, a ...any) error {
		return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: fmt.Sprintf(format, a...)}
	}
	for k, v := range q {
		if k != "after" && k != "limit" {
			return 0, 0, bad("unknown query parameter %q (want after, limit)", k)
		}
		if len(v) != 1 {
			return 0, 0, bad("query parameter %q given %d times", k, len(v))
		}
	}
	if q.Has("after") {
		v := q.Get("after")
		u, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil {
			return 0, 0, bad("query parameter after: %q is not a model version (an integer in 0..%d)", v, uint64(math.MaxUint64))
		}
		after = int64(min(u, math.MaxInt64))
	}
	limit = aggregator.DefaultModelLimit
	if q.Has("limit") {
		v := q.Get("limit")
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > aggregator.MaxModelLimit || strings.HasPrefix(v, "+") {
			return 0, 0, bad("query parameter limit: %q is not an integer in 1..%d", v, aggregator.MaxModelLimit)
		}
		limit = n
	}
	return after, limit, nil
}

// redactContributions empties mv's per-merchant contributions (each
// contributor's ε and weight at publication) for a caller that is neither
// compliance nor admin: /v1/budgets and /metrics keep per-merchant ε to those
// roles, and a partner app or another merchant would read it here otherwise.
func redactContributions(c *auth.Claims, mv *protocol.ModelVersion) {
	if slices.Contains(rolesCompliance, c.Role) {
		return
	}
	mv.ContributionsRedacted = len(mv.Contributions) > 0
	mv.Contributions = []protocol.Contribution{}
}

// versionVar reads {version}: a positive integer, or "active" (0) when
// allowActive.
func versionVar(r *http.Request, allowActive bool) (int, error) {
	v := mux.Vars(r)["version"]
	if allowActive && v == "active" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || strings.HasPrefix(v, "+") {
		want := "a positive integer"
		if allowActive {
			want += " or \"active\""
		}
		return 0, &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest,
			detail: fmt.Sprintf("path parameter \"version\": %q is not %s", v, want)}
	}
	return n, nil
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) error {
	v, err := versionVar(r, true)
	if err != nil {
		return err
	}
	c, err := claims(r)
	if err != nil {
		return err
	}
	mv, err := s.svc.Model(r.Context(), v)
	if err != nil {
		return err
	}
	redactContributions(c, &mv)
	return writeJSON(w, http.StatusOK, mv)
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) error {
	c, err := claims(r)
	if err != nil {
		return err
	}
	v, err := versionVar(r, false)
	if err != nil {
		return err
	}
	if err := s.svc.Rollback(r.Context(), actor(c), v); err != nil {
		return err
	}
	// This replica answers from the new state at once; the others follow
	// within PredictOptions.ActiveTTL.
	s.predict.models.forget()
	mv, err := s.svc.Model(r.Context(), v)
	if err != nil {
		return fmt.Errorf("rollback to %d done, read it back: %w", v, err)
	}
	return writeJSON(w, http.StatusOK, mv)
}

func (s *Server) budgets(w http.ResponseWriter, r *http.Request) error {
	bs, err := s.svc.Budgets(r.Context())
	if err != nil {
		return err
	}
	out := make([]protocol.BudgetInfo, 0, len(bs))
	for _, b := range bs {
		out = append(out, protocol.BudgetInfo{
			Merchant: b.Merchant, Cap: b.Cap, Delta: b.Delta, Epsilon: b.Epsilon,
			Releases: b.Releases, LastRelease: b.LastRelease.UTC(), Statement: budgetStatement(b),
		})
	}
	return writeJSON(w, http.StatusOK, budgetList{Budgets: out})
}

// requireMediaType refuses a request whose Content-Type is not want.
func requireMediaType(r *http.Request, want string) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != want {
		return &httpError{status: http.StatusUnsupportedMediaType, typ: typeUnsupportedMedia,
			detail: fmt.Sprintf("Content-Type %q: want %s", ct, want)}
	}
	return nil
}

// tooLarge is the answer to a body over its limit.
func tooLarge(limit int64) error {
	return &httpError{status: http.StatusRequestEntityTooLarge, typ: typeTooLarge,
		detail: fmt.Sprintf("request body larger than %d bytes", limit)}
}

// readBody reads the whole body, at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge(limit)
		}
		return nil, &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: "request body could not be read", cause: err}
	}
	return b, nil
}

// decodeJSON reads one JSON object into v: application/json only, at most
// limit bytes, no unknown fields, nothing after the value. Errors name the
// field or the byte offset.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := requireMediaType(r, "application/json"); err != nil {
		return err
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	bad := func(format string, a ...any) error {
		return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: fmt.Sprintf(format, a...)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return bad("invalid JSON at byte %d: %v", se.Offset, se)
		}
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return bad("field %q: JSON %s where %s is expected", te.Field, te.Value, te.Type)
		}
		if be, ok := errors.AsType[base64.CorruptInputError](err); ok {
			// encoding/json does not say which field held the bad bytes.
			return bad("invalid base64 in a binary field at its byte %d", int64(be))
		}
		if errors.Is(err, io.EOF) {
			return bad("empty body: want a JSON object")
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return bad("truncated JSON")
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			// The key is the caller's text and the detail reaches the audit
			// log and the server log: echo it only when it looks like a field
			// name, never when it could carry an identifier.
			if unq, qerr := strconv.Unquote(name); qerr == nil && fieldLike(unq) {
				return bad("unknown field %s", name)
			}
			return bad("unknown field (its name is not echoed: not a plain field name of at most %d letters, digits and underscores)", maxEchoedField)
		}
		return bad("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("trailing data after the JSON value at byte %d", dec.InputOffset())
	}
	// encoding/json quietly turns invalid UTF-8 and unpaired surrogate
	// escapes into U+FFFD: two different ids would become one.
	if off, ok := textValid(body); !ok {
		return bad("invalid JSON at byte %d: a string that is not valid UTF-8 (or an unpaired \\u surrogate escape)", off)
	}
	// encoding/json keeps the last of a repeated key and folds case: the
	// server would act on one value while a gateway, a request log or a
	// reviewer that reads the first sees another.
	if path, off, ok := repeatedKey(body); !ok {
		if path == "" {
			return bad("invalid JSON at byte %d: a key twice in one object (its name is not echoed: not a plain field name)", off)
		}
		return bad("invalid JSON at byte %d: key %q twice in one object (keys are compared ignoring case)", off, path)
	}
	// encoding/json also matches a key to a field ignoring case: refuse a
	// key not spelled exactly as its field, for the same reason.
	if path, field, off, ok := foldedKey(body, reflect.TypeOf(v)); !ok {
		if path == "" || field == "" {
			return bad("invalid JSON at byte %d: a key not spelled exactly as a field (its name is not echoed: not a plain field name; keys are case-sensitive)", off)
		}
		return bad("invalid JSON at byte %d: key %q is not spelled as the field %q (keys are case-sensitive)", off, path, field)
	}
	return nil
}

// repeatedKey walks body, a JSON document that decoded, and finds the first
// object key equal, ignoring case, to an earlier key of the same object. It
// returns false with the key's path (customers[0].Customer; "" when a key on
// it is not fieldLike, so that the caller's text is not echoed) and the
// byte offset after it, or true when there is none.
func repeatedKey(body []byte) (path string, offset int64, ok bool) {
	d := json.NewDecoder(bytes.NewReader(body))
	var walk func(path string) (string, bool, error)
	walk = func(path string) (string, bool, error) {
		t, err := d.Token()
		if err != nil {
			return "", false, err
		}
		switch t {
		case json.Delim('{'):
			keys := map[string]bool{} // lower case: a map field may hold many keys
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return "", false, err
				}
				k, _ := kt.(string)
				sub := keyPath(path, k)
				fold := strings.ToLower(k)
				if keys[fold] {
					return sub, true, nil
				}
				keys[fold] = true
				if p, found, err := walk(sub); found || err != nil {
					return p, found, err
				}
			}
			_, err = d.Token()
			return "", false, err
		case json.Delim('['):
			for i := 0; d.More(); i++ {
				sub := path + "[" + strconv.Itoa(i) + "]"
				if path == "?" {
					sub = "?"
				}
				if p, found, err := walk(sub); found || err != nil {
					return p, found, err
				}
			}
			_, err = d.Token()
			return "", false, err
		}
		return "", false, nil
	}
	p, found, err := walk("")
	if err != nil || !found {
		return "", 0, true // the document decoded: an error here is not the caller's
	}
	if p == "?" {
		p = ""
	}
	return p, d.InputOffset(), false
}

// maxEchoedField is the longest unknown field name an error echoes.
const maxEchoedField = 40

// keyPath is the path of key k below path for a message: "?" below a key
// that is not a plain field name, or for such a key, so that a caller's
// text is not echoed.
func keyPath(path, k string) string {
	switch {
	case path == "?" || !fieldLike(k):
		return "?"
	case path == "":
		return k
	}
	return path + "." + k
}

// fieldLike reports whether s can be echoed as a field name: ASCII letters,
// digits and underscores, at most maxEchoedField of them. An e-mail address,
// a phone number with a plus sign or a name with a space is not.
func fieldLike(s string) bool {
	if s == "" || len(s) > maxEchoedField {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// textValid reports whether the strings of body, a valid JSON document,
// decode without replacement characters: body is UTF-8 and every \u escape
// of a UTF-16 surrogate is half of a pair. Otherwise it returns the byte
// offset of the first offence.
func textValid(body []byte) (int, bool) {
	if !utf8.Valid(body) {
		for i := 0; i < len(body); {
			r, n := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && n == 1 {
				return i, false
			}
			i += n
		}
	}
	// In a valid document a backslash occurs only in a string, starting an
	// escape; \\ is skipped whole so that its second half starts none.
	for i := bytes.IndexByte(body, '\\'); i >= 0 && i+1 < len(body); {
		if body[i+1] == 'u' {
			r := hex4(body[i+2:])
			switch {
			case r >= 0xD800 && r < 0xDC00:
				if i+12 > len(body) || body[i+6] != '\\' || body[i+7] != 'u' {
					return i, false
				}
				if lo := hex4(body[i+8:]); lo < 0xDC00 || lo > 0xDFFF {
					return i, false
				}
				i += 12
			case r >= 0xDC00 && r <= 0xDFFF:
				return i, false
			default:
				i += 6
			}
		} else {
			i += 2
		}
		j := bytes.IndexByte(body[min(i, len(body)):], '\\')
		if j < 0 {
			break
		}
		i += j
	}
	return 0, true
}

// hex4 is the value of the four hex digits at the start of b, or -1.
func hex4(b []byte) int {
	if len(b) < 4 {
		return -1
	}
	v := 0
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			return -1
		}
	}
	return v
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	// Once the status is on the wire nothing else can be sent, so a failed
	// write (the client went away) is not reported.
	_, _ = w.Write(append(b, '\n'))
	return nil
}
