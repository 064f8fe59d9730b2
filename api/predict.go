package api

// Predict routes: partner apps and merchants ask when a customer will next buy.
//
//	POST /v1/predict        partner, merchant (admin, compliance: 403)   JSON PredictRequest → 200 Prediction
//	POST /v1/predict:batch  partner, merchant (admin, compliance: 403)   JSON PredictBatchRequest → 200 BatchPrediction
//
// Authorization. A partner token may predict for a merchant only when both the
// token's merchants claim and the federation policy's partner grant list it;
// a merchant token only for its own merchant; anything else is 403 (with the
// same answer for an enrolled and a made-up merchant id, so ids cannot be
// probed). Admin and compliance tokens get 403 too: they oversee the
// federation and have no business scoring a shop's customers (least
// privilege); compliance sees every prediction in the audit log instead.
// Their attempts pass the role check on purpose so that the handler refuses
// and audits them like any other denial.
//
// Features. Events are turned into the model's feature vector by the same
// model/feature builder that training uses, with one cutoff at as_of (default:
// now) and the merchant's enrolled time zone; events at or after as_of are
// ignored, as in training. A precomputed vector must have the model schema's
// length. A customer with no event before as_of cannot be scored (422).
//
// Ranges. Every number of an answer is finite. An event amount outside
// [−model.MaxAmount, model.MaxAmount] (10^12) and a precomputed feature
// value outside [−MaxFeatureValue, MaxFeatureValue] (10^6) are refused with
// 422 naming the field (events[7].amount, features[3]); an answer the
// model's arithmetic could not keep finite (a model whose standardisation
// overflows) is a 422 too, never a 500.
//
// Batches answer per customer. Whatever concerns one customer — its id, its
// events or features, its missing history, its non-finite answer — is that
// customer's problem entry (status, type, detail naming the field, as
// /v1/predict would answer it); the others get their predictions. Only what
// the request shares (JSON syntax, merchant, token, as_of, model version,
// the number of customers) fails the whole batch.
//
// Customer ids are the caller's: an answer echoes the id it was asked about,
// and nothing else does. Problem details name the field, never the id, so
// that the audit reason, the server log and the metrics cannot hold it; the
// audit entry holds it as an HMAC only. Other values the caller sent (a
// merchant it may not query, an as_of, an event's time or kind) are quoted
// only when short and made of id and time characters (echo): a refused
// call's detail is its audit reason, and must not carry the caller's prose. Strings that are not valid UTF-8
// (raw, or as an unpaired \u surrogate escape) are refused with 400 rather
// than read as U+FFFD.
//
// Explanation. The model's score f(z) over the standardised features z = (x −
// mean)/scale raises P(buy within t) at every horizon. For the linear hazard
// each feature's contribution is w_j·z_j, exact: the contributions add up to
// f, and the reference point (f = 0) is a customer at the model's
// standardisation mean. For the MLP the contribution is gradient × input,
// ∂f/∂z_j · z_j at the customer's z (first-order; they need not add up to f).
// Each entry gives the value the model read (value, transformed), the same
// value in the feature's own unit (raw_value, unit: 214 days, not log1p 5.37;
// feature.Untransform), the standardised value and the contribution.
//
// Audit and fail-closed. Every call that passes authentication and the rate
// limit (429s are not audited: an abuser must not be able to flood the log)
// appends one audit entry (action predict or predict.batch; actor;
// object merchant/<id>, or merchant/? when the caller named no valid merchant
// id; the merchant and customer pseudonyms as HMAC'd
// identifiers; model version; outcome ok, denied or error with the reason).
// The answer is written only once that entry is durable; if the audit log
// fails the caller gets 503 and no prediction. A batch is one entry whose
// identifiers name every customer (customer.0000, customer.0001, …) and
// whose details count the customers answered with a problem (problems); a
// batch refused as a whole (denied, malformed) names none, only their
// number (customers).
//
// Limits. Bodies over PredictOptions.MaxBodyBytes (single) or MaxBatchBytes
// (batch) and batches of more than MaxBatch customers are refused with 413.
// The partner rate limit counts requests: a batch is one request. Admin and
// compliance tokens, whose calls here are audited denials, are held to
// DefaultOverseerRate and DefaultOverseerBurst per subject, as on every
// route (limitOverseers).
//
// Caching. Parsed models are cached per version (versions are immutable); the
// active version is looked up again at most every ActiveTTL, so a rollback
// reaches predictions within that time. Enrolled merchants (time zones) are
// cached for MerchantTTL and reloaded at once on a miss.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// Predict defaults.
const (
	DefaultMaxPredictBytes = 256 << 10
	DefaultMaxBatchBytes   = 32 << 20
	DefaultMaxBatch        = 1000
	DefaultTopFeatures     = 5
	DefaultActiveTTL       = time.Second
	DefaultMerchantTTL     = 10 * time.Second
	DefaultAuditTimeout    = 5 * time.Second
	// maxCustomerBytes bounds a customer pseudonym.
	maxCustomerBytes = 256
	// maxCachedModels bounds the parsed-model cache (explicit versions).
	maxCachedModels = 32
	// merchantMissRefresh is the least time between store reads caused by an
	// unknown merchant id.
	merchantMissRefresh = time.Second
)

// Auditor appends an audit record and returns once it is durable
// (*audit.Log implements it).
type Auditor interface {
	Append(ctx context.Context, rec audit.Record) (audit.Entry, error)
}

var _ Auditor = (*audit.Log)(nil)

// PredictOptions configure the predict routes (Options.Predict).
type PredictOptions struct {
	// Audit receives one entry per predict call. Without it every predict
	// call is refused with 503: predictions are never served unaudited.
	Audit Auditor
	// MayQuery reports whether the policy grants partner predictions for
	// merchant (policies.Policy.MayQuery). Without it no partner may predict.
	MayQuery func(partner, merchant string) bool
	// MaxBodyBytes and MaxBatchBytes bound the single and batch bodies;
	// MaxBatch bounds a batch's customers. Defaults when 0.
	MaxBodyBytes  int64
	MaxBatchBytes int64
	MaxBatch      int
	// TopFeatures is how many features are listed each way (default 5).
	TopFeatures int
	// ActiveTTL is how long the active version is trusted before it is
	// looked up again; MerchantTTL the same for enrolled merchants.
	ActiveTTL   time.Duration
	MerchantTTL time.Duration
	// AuditTimeout bounds the wait for an audit entry (default 5 s); the
	// wait is detached from the request so that a caller who hangs up does
	// not cut an entry short.
	AuditTimeout time.Duration
	// Now is the clock for the default as_of and the caches; time.Now when nil.
	Now func() time.Time
}

// EventInput is one event in the canonical shape.
type EventInput struct {
	Time     string   `json:"time"` // RFC 3339
	Kind     string   `json:"kind"` // view | cart | favorite | purchase
	Amount   *float64 `json:"amount,omitempty"`
	Item     string   `json:"item,omitempty"`
	Category string   `json:"category,omitempty"`
}

// PredictRequest is the body of POST /v1/predict: exactly one of Events and
// Features.
type PredictRequest struct {
	Merchant     string       `json:"merchant"`
	Customer     string       `json:"customer"` // the merchant's pseudonym of the customer
	Events       []EventInput `json:"events,omitempty"`
	Features     []float64    `json:"features,omitempty"`      // in model schema order, after transforms
	ModelVersion int          `json:"model_version,omitempty"` // 0: the active version
	AsOf         string       `json:"as_of,omitempty"`         // RFC 3339; default now
}

// BatchCustomer is one customer of a batch.
type BatchCustomer struct {
	Customer string       `json:"customer"`
	Events   []EventInput `json:"events,omitempty"`
	Features []float64    `json:"features,omitempty"`
}

// PredictBatchRequest is the body of POST /v1/predict:batch: one merchant,
// model version and as_of for all customers.
type PredictBatchRequest struct {
	Merchant     string          `json:"merchant"`
	Customers    []BatchCustomer `json:"customers"`
	ModelVersion int             `json:"model_version,omitempty"`
	AsOf         string          `json:"as_of,omitempty"`
}

// Within holds P(first purchase within t days of as_of), non-decreasing in t.
// The model is trained on 30-day labels; 60d and 90d continue its survival
// curve past day 30 with the baseline hazard held at its mean
// (hazard.LongHorizons), so they are extrapolations.
type Within struct {
	D1  float64 `json:"1d"`
	D3  float64 `json:"3d"`
	D7  float64 `json:"7d"`
	D14 float64 `json:"14d"`
	D30 float64 `json:"30d"`
	D60 float64 `json:"60d" doc:"extrapolated past the model's 30-day horizon (baseline hazard held at its mean)"`
	D90 float64 `json:"90d" doc:"extrapolated past the model's 30-day horizon (baseline hazard held at its mean)"`
}

// FeatureContribution is one feature's push on the score.
type FeatureContribution struct {
	Feature string  `json:"feature"`
	Value   float64 `json:"value"` // as the model reads it: transformed, not standardised
	// RawValue is Value in the feature's own Unit (feature.Untransform):
	// gap_last_days 214, not its log1p 5.37.
	RawValue     float64 `json:"raw_value"`
	Unit         string  `json:"unit"`         // days, years, count, per_30d, currency, share, ratio, flag
	Standardized float64 `json:"standardized"` // (value − mean)/scale
	// Contribution > 0 raises the score f and with it P(buy) at every
	// horizon, 60 and 90 days included (the extrapolated days carry f on).
	// The predicted day is read off the same day distribution, whose shape
	// the shared baseline sets: a large positive score makes the daily
	// hazards large enough to pull the predicted day earlier, a small one
	// leaves it near the shop's typical day.
	Contribution float64 `json:"contribution" doc:"push on the score f: > 0 raises P(buy) at every horizon (1 to 90 days)"`
}

// Explanation says why the score is what it is.
type Explanation struct {
	Method string                `json:"method"` // linear_exact | gradient_x_input
	Score  float64               `json:"score"`  // f(z); 0 at the standardisation mean
	Up     []FeatureContribution `json:"up"`     // largest positive contributions first
	Down   []FeatureContribution `json:"down"`   // largest negative contributions first
}

// Provenance ties a prediction to the model version and its privacy cost.
type Provenance struct {
	ModelVersion  int                     `json:"model_version"`
	Round         string                  `json:"round,omitempty"`
	PublishedAt   time.Time               `json:"published_at"`
	SchemaHash    string                  `json:"schema_hash"`
	PolicyHash    string                  `json:"policy_hash"`
	Merge         string                  `json:"merge"`
	Contributions []protocol.Contribution `json:"contributions"` // ε each merchant had spent at publication
	// ContributionsRedacted: the caller's role may not see per-merchant ε
	// (compliance and admin only), so Contributions is empty.
	ContributionsRedacted bool `json:"contributions_redacted,omitempty"`
}

// CustomerPrediction is the model's answer for one customer.
type CustomerPrediction struct {
	Customer          string      `json:"customer"`
	Within            Within      `json:"within"`
	ExpectedDays      float64     `json:"expected_days" doc:"E[min(T, 30)]: expected days to the first purchase capped at the 30-day horizon, a customer who does not buy within it counted as 30 (near 30 for most customers of a shop where few buy within a month: read expected_day_if_buys for when)"`
	ExpectedDayIfBuys float64     `json:"expected_day_if_buys" doc:"E[T | T <= 30]: expected day (1..30) of the first purchase given one within 30 days"`
	PredictedDay      int         `json:"predicted_day" doc:"the day Kairos predicts (1..30): the median day of the first purchase given one within 30 days, the day with the smallest expected error in days"`
	PredictedDate     string      `json:"predicted_date" doc:"predicted_day as a date in the merchant's time zone"`
	MostLikelyDay     int         `json:"most_likely_day" doc:"deprecated, use predicted_day: the mode of the day distribution (1..30), which the shared baseline hazard makes nearly the same day for every customer"`
	MostLikelyDate    string      `json:"most_likely_date" doc:"deprecated, use predicted_date: most_likely_day as a date"`
	Explanation       Explanation `json:"explanation"`
}

// Prediction is the answer of POST /v1/predict.
type Prediction struct {
	Merchant   string     `json:"merchant"`
	AsOf       time.Time  `json:"as_of"`
	TimeZone   string     `json:"time_zone"` // of most_likely_date: the merchant's
	Provenance Provenance `json:"provenance"`
	CustomerPrediction
}

// BatchItem is one customer's result in a batch: a prediction, or the
// problem that kept this customer (and only this one) from getting one.
type BatchItem struct {
	Customer string       `json:"customer"` // the request's own id, echoed to the caller only
	Problem  *ItemProblem `json:"problem,omitempty"`
	// Error is Problem's detail, kept for clients written before Problem.
	Error             string       `json:"error,omitempty"`
	Within            *Within      `json:"within,omitempty"`
	ExpectedDays      float64      `json:"expected_days,omitempty" doc:"as in a single prediction"`
	ExpectedDayIfBuys float64      `json:"expected_day_if_buys,omitempty" doc:"as in a single prediction"`
	PredictedDay      int          `json:"predicted_day,omitempty" doc:"as in a single prediction"`
	PredictedDate     string       `json:"predicted_date,omitempty" doc:"as in a single prediction"`
	MostLikelyDay     int          `json:"most_likely_day,omitempty" doc:"deprecated, use predicted_day"`
	MostLikelyDate    string       `json:"most_likely_date,omitempty" doc:"deprecated, use predicted_date"`
	Explanation       *Explanation `json:"explanation,omitempty"`
}

// ItemProblem is why one batch customer has no prediction: the members of
// the RFC 7807 problem /v1/predict would answer for that customer alone. Its
// detail names the field (customers[3].events[7].amount), never the
// customer's id.
type ItemProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// BatchPrediction is the answer of POST /v1/predict:batch, results in request
// order.
type BatchPrediction struct {
	Merchant   string      `json:"merchant"`
	AsOf       time.Time   `json:"as_of"`
	TimeZone   string      `json:"time_zone"`
	Provenance Provenance  `json:"provenance"`
	Results    []BatchItem `json:"results"`
}

// rolesPredict reach the predict handlers; only partner and merchant tokens
// get predictions, the others a 403 that is audited.
var rolesPredict = []auth.Role{auth.RolePartner, auth.RoleMerchant, auth.RoleAdmin, auth.RoleCompliance}

// predictRoutes are the predict routes, appended to v1Routes.
func (s *Server) predictRoutes() []apiRoute {
	return []apiRoute{
		{http.MethodPost, "/v1/predict", rolesPredict, "predict",
			"P(buy within 1/3/7/14/30 days), expected days, most likely date and the features behind them, for one customer of a merchant " +
				"the token may query; from events (same feature builder as training) or a feature vector. Audited before it is answered. " +
				"Partner tokens for merchants in both their claim and the policy grant, merchant tokens for themselves; admin and compliance get 403. " +
				"A model_version a rollback withdrew is 410 (type withdrawn), naming the version and the seq of the rollback's audit entry.",
			PredictRequest{}, http.StatusOK, Prediction{}, []int{400, 404, 410, 413, 415, 422, 429, 503}, s.predictOne},
		{http.MethodPost, "/v1/predict:batch", rolesPredict, "predictBatch",
			"Predict for up to 1000 customers of one merchant (one audit entry naming each). Each customer is answered on its own: " +
				"one whose input is refused (a bad event, an amount or feature out of range, no event before as_of) gets a problem entry " +
				"(the status, type and detail /v1/predict would answer, naming the field such as customers[3].events[7].amount), " +
				"the others their predictions. Same authorization as /v1/predict; a withdrawn model_version is 410 as there.",
			PredictBatchRequest{}, http.StatusOK, BatchPrediction{}, []int{400, 404, 410, 413, 415, 429, 503}, s.predictBatch},
	}
}

// predictor holds what the predict routes need beyond the Server.
type predictor struct {
	opts      PredictOptions
	models    *modelCache
	merchants *merchantCache
}

func newPredictor(svc Service, o PredictOptions) (*predictor, error) {
	if o.MaxBodyBytes < 0 || o.MaxBatchBytes < 0 || o.MaxBatch < 0 || o.TopFeatures < 0 ||
		o.ActiveTTL < 0 || o.MerchantTTL < 0 || o.AuditTimeout < 0 {
		return nil, errors.New("new api server: negative predict limit")
	}
	o.MaxBodyBytes = cmpOr(o.MaxBodyBytes, DefaultMaxPredictBytes)
	o.MaxBatchBytes = cmpOr(o.MaxBatchBytes, DefaultMaxBatchBytes)
	o.MaxBatch = cmpOr(o.MaxBatch, DefaultMaxBatch)
	o.TopFeatures = cmpOr(o.TopFeatures, DefaultTopFeatures)
	o.ActiveTTL = cmpOr(o.ActiveTTL, DefaultActiveTTL)
	o.MerchantTTL = cmpOr(o.MerchantTTL, DefaultMerchantTTL)
	o.AuditTimeout = cmpOr(o.AuditTimeout, DefaultAuditTimeout)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &predictor{
		opts:      o,
		models:    &modelCache{svc: svc, ttl: o.ActiveTTL, now: o.Now, byVersion: map[int]*servedModel{}, checked: map[int]time.Time{}},
		merchants: &merchantCache{svc: svc, ttl: o.MerchantTTL, now: o.Now},
	}, nil
}

// ---- handlers ----

func (s *Server) predictOne(w http.ResponseWriter, r *http.Request) error {
	c, err := claims(r)
	if err != nil {
		return err
	}
	p := s.predict
	var req PredictRequest
	if err := decodePredict(w, r, p.opts.MaxBodyBytes, &req, fastPredictRequest); err != nil {
		return p.audited(w, r, c, "predict", req.Merchant, []string{req.Customer}, 0, err)
	}
	out, sm, err := p.one(r.Context(), c, &req)
	if err != nil {
		return p.audited(w, r, c, "predict", req.Merchant, []string{req.Customer}, 0, err)
	}
	body, err := encodePrediction(out, sm.provJSON)
	if errors.Is(err, errNotFinite) {
		err = unprocessable("field %q: %v", inputField(BatchCustomer{Features: req.Features}), err)
	}
	if err != nil {
		return p.audited(w, r, c, "predict", req.Merchant, []string{req.Customer}, 0, err)
	}
	if err := p.audited(w, r, c, "predict", req.Merchant, []string{req.Customer}, out.Provenance.ModelVersion, nil); err != nil {
		return err
	}
	return writePredictJSON(w, body)
}

func (s *Server) predictBatch(w http.ResponseWriter, r *http.Request) error {
	c, err := claims(r)
	if err != nil {
		return err
	}
	p := s.predict
	var req PredictBatchRequest
	if err := decodePredict(w, r, p.opts.MaxBatchBytes, &req, fastBatchRequest); err != nil {
		return p.audited(w, r, c, "predict.batch", req.Merchant, nil, 0, err)
	}
	// An oversized batch is refused without naming its customers: the entry
	// stays bounded whatever the body holds.
	var ids []string
	if len(req.Customers) <= p.opts.MaxBatch {
		ids = make([]string, len(req.Customers))
		for i, bc := range req.Customers {
			ids[i] = bc.Customer
		}
	}
	out, sm, err := p.batch(r.Context(), c, &req)
	if err != nil {
		return p.audited(w, r, c, "predict.batch", req.Merchant, ids, 0, err)
	}
	body, err := encodeBatch(out, sm.provJSON)
	if err != nil {
		return p.audited(w, r, c, "predict.batch", req.Merchant, ids, 0, fmt.Errorf("encode response: %w", err))
	}
	if err := p.audited(w, r, c, "predict.batch", req.Merchant, ids, out.Provenance.ModelVersion, nil, problemCount(out.Results)); err != nil {
		return err
	}
	return writePredictJSON(w, body)
}

// errPredictOff answers predict calls on a server without an audit log.
var errPredictOff = &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable,
	detail: "predictions are not served: this server has no audit log for them"}

// audited appends the call's audit entry: outcome ok when cause is nil,
// denied for a 403, error otherwise; a batch answered with problems for
// some customers records their number (problems, at most one). It returns
// cause when the entry is durable, and a 503 (never cause's answer, never a
// prediction) when it is not. Customers are identifiers, stored as HMACs; the
// reason is cause's public detail, which never holds a customer id.
func (p *predictor) audited(w http.ResponseWriter, r *http.Request, c *auth.Claims, action, merchant string, customers []string, version int, cause error, problems ...int) error {
	if p == nil || p.opts.Audit == nil {
		return errPredictOff
	}
	rec := audit.Record{
		Actor:       actor(c),
		Action:      action,
		Object:      "merchant/" + merchant,
		Outcome:     audit.OutcomeOK,
		Identifiers: make(map[string]string, len(customers)+1),
		Details:     map[string]string{"customers": strconv.Itoa(len(customers))},
	}
	if merchant != "" {
		rec.Identifiers["merchant"] = merchant // stored as its HMAC, whatever its bytes
	}
	if keys.CheckMerchantID(merchant) != nil {
		// The caller's text, which can be no merchant: in clear it would put
		// up to a body's worth of bytes into the append-only log per request,
		// or bytes the log refuses (NUL), leaving the call unaudited (503).
		rec.Object = "merchant/?"
	}
	if version > 0 {
		rec.Details["model_version"] = strconv.Itoa(version)
	}
	if len(problems) > 0 && problems[0] > 0 {
		rec.Details["problems"] = strconv.Itoa(problems[0])
	}
	if id := w.Header().Get("X-Request-Id"); id != "" {
		rec.Details["request_id"] = id
	}
	for i, cu := range customers {
		if cause != nil && action != "predict" {
			// A batch refused as a whole served nothing: its entry counts
			// the customers and names none. Naming them cost an HMAC each,
			// ~90 kB per refused request of 1,000, from callers (a partner
			// not granted the merchant, an admin or compliance token, which
			// have no request rate) who learnt nothing about them.
			break
		}
		if cu == "" {
			continue
		}
		if action == "predict" {
			rec.Identifiers["customer"] = cu
		} else {
			rec.Identifiers[customerKey(i)] = cu
		}
	}
	if cause != nil {
		he := classify(cause)
		rec.Outcome = audit.OutcomeError
		if he.status == http.StatusForbidden {
			rec.Outcome = audit.OutcomeDenied
		}
		rec.Reason = strconv.Itoa(he.status) + " " + he.detail
		if len(rec.Reason) > 512 {
			// At a character boundary: the detail echoes the caller's text,
			// and a reason that is not UTF-8 is refused by the log (503, no
			// entry).
			rec.Reason = strings.ToValidUTF8(rec.Reason[:512], "")
		}
		if !audit.ValidText(rec.Reason) {
			rec.Reason = strings.ReplaceAll(strings.ToValidUTF8(rec.Reason, "\uFFFD"), "\x00", "\uFFFD")
		}
	}
	// Detached from the request: a caller who hangs up does not cut the
	// entry short, and the wait is still bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), p.opts.AuditTimeout)
	defer cancel()
	if _, err := p.opts.Audit.Append(ctx, rec); err != nil {
		return &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable,
			detail: "the audit log is unavailable, so no prediction is served", cause: errors.Join(err, cause)}
	}
	return cause
}

// customerKey is fmt.Sprintf("customer.%04d", i) without fmt: a batch's
// audit record names up to MaxBatch customers.
func customerKey(i int) string {
	var b [32]byte
	k := append(b[:0], "customer."...)
	if i >= 0 {
		for p := 1000; p > 1 && i < p; p /= 10 {
			k = append(k, '0')
		}
	}
	return string(strconv.AppendInt(k, int64(i), 10))
}

// request errors

func badRequest(format string, a ...any) error {
	return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: fmt.Sprintf(format, a...)}
}

// unprocessable is a well-formed request whose values cannot be served (an
// amount out of range, a customer without history): 422.
func unprocessable(format string, a ...any) error {
	return &httpError{status: http.StatusUnprocessableEntity, typ: typeInvalidRequest, detail: fmt.Sprintf(format, a...)}
}

func forbidMerchant(merchant string) error {
	return &httpError{status: http.StatusForbidden, typ: typeForbidden,
		detail: "this token may not predict for merchant " + echo(merchant)}
}

// maxEcho is the longest caller value a problem detail quotes.
const maxEcho = 64

// echo quotes a value the caller sent for a problem detail, which is also
// the audit reason of a refused prediction: only when it is at most maxEcho
// bytes of the characters ids and times are made of (letters, digits and
// _ . : + -), so that a caller cannot write prose of its choosing into the
// compliance log; otherwise it says how long the value was.
func echo(v string) string {
	ok := len(v) <= maxEcho
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.:+-", c) >= 0
	}
	if ok {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("(a value of %d bytes, not echoed: not an id or time)", len(v))
}

// errNoHistory: the builder makes no row for a customer without events before as_of.
var errNoHistory = errors.New("no event before as_of: nothing to predict from")

// scope is what a request resolved to: the merchant, its zone, the model and as_of.
type scope struct {
	merchant aggregator.Merchant
	loc      *time.Location
	model    *servedModel
	asOf     time.Time
	// dates[k] is day k's local date, filled by datesOnce for a batch:
	// every customer's most likely day is one of the model's few days.
	dates []string
}

// dayDate is the local date of day k (1-based) after as_of: the date of the
// middle of [as_of+(k−1)·24h, as_of+k·24h).
func (sc *scope) dayDate(k int) string {
	if k > 0 && k < len(sc.dates) {
		return sc.dates[k]
	}
	start := sc.asOf.Add(time.Duration(k-1) * model.Day)
	return start.Add(model.Day / 2).In(sc.loc).Format(time.DateOnly)
}

// fillDates formats the dates of days 1..horizon once, before a batch's
// chunks read them concurrently.
func (sc *scope) fillDates(horizon int) {
	dates := make([]string, horizon+1)
	for k := 1; k <= horizon; k++ {
		dates[k] = sc.dayDate(k)
	}
	sc.dates = dates
}

// resolve authorizes the token for merchant and loads the merchant, the model
// version and as_of.
func (p *predictor) resolve(ctx context.Context, c *auth.Claims, merchant string, version int, asOf string) (*scope, error) {
	if merchant == "" {
		return nil, badRequest("field \"merchant\": required")
	}
	if err := p.authorize(c, merchant); err != nil {
		return nil, err
	}
	if version < 0 {
		return nil, badRequest("field \"model_version\": %d is not a version (omit it or 0 for the active one)", version)
	}
	sc := &scope{asOf: p.opts.Now().UTC()}
	if asOf != "" {
		t, err := time.Parse(time.RFC3339Nano, asOf)
		if err != nil {
			return nil, badRequest("field \"as_of\": %s is not an RFC 3339 time such as 2026-11-27T16:00:00Z", echo(asOf))
		}
		if t.Year() < 1970 || t.Year() > 2200 {
			return nil, badRequest("field \"as_of\": %s is outside 1970..2200", asOf)
		}
		sc.asOf = t.UTC()
	}
	m, loc, err := p.merchants.get(ctx, merchant)
	if err != nil {
		return nil, err
	}
	if m.Revoked {
		return nil, &httpError{status: http.StatusForbidden, typ: typeForbidden, detail: fmt.Sprintf("merchant %q is revoked", merchant)}
	}
	sc.merchant, sc.loc = m, loc
	if sc.model, err = p.models.get(ctx, version); err != nil {
		return nil, err
	}
	return sc, nil
}

// authorize: partners by their token's merchants claim and the policy's
// grant, merchants for themselves. The role check already refused the rest.
func (p *predictor) authorize(c *auth.Claims, merchant string) error {
	switch c.Role {
	case auth.RolePartner:
		if slices.Contains(c.Merchants, merchant) && p.opts.MayQuery != nil && p.opts.MayQuery(c.Subject, merchant) {
			return nil
		}
	case auth.RoleMerchant:
		if id, err := merchantOf(c); err == nil && id == merchant {
			return nil
		}
	}
	return forbidMerchant(merchant)
}

// checkCustomer checks a customer pseudonym; field names it in the error
// and is formatted only then. The error never holds the id itself: it goes
// into the audit log's reason and the server log, which must not learn it.
func checkCustomer(id string, field func() string) error {
	switch {
	case id == "":
		return badRequest("field %q: required", field())
	case len(id) > maxCustomerBytes:
		return badRequest("field %q: longer than %d bytes", field(), maxCustomerBytes)
	case !utf8.ValidString(id):
		return badRequest("field %q: not UTF-8", field())
	}
	return nil
}

// MaxFeatureValue bounds the magnitude of a precomputed feature value: the
// builder's transformed features lie far inside it (log1p of counts, days
// and amounts up to model.MaxAmount stays below 40; recency in years below
// 300), and a value beyond it is refused (422) rather than standardised into
// an overflow.
const MaxFeatureValue = 1e6

// errNotFinite is a prediction or explanation with a non-finite number in
// it: inputs so far outside the model's training range that its arithmetic
// overflowed. It is the customer's problem (422), never a 500.
var errNotFinite = errors.New("the model's answer for these inputs is not finite: values far outside the range it was trained on")

func (p *predictor) one(ctx context.Context, c *auth.Claims, req *PredictRequest) (*Prediction, *servedModel, error) {
	sc, err := p.resolve(ctx, c, req.Merchant, req.ModelVersion, req.AsOf)
	if err != nil {
		return nil, nil, err
	}
	if err := checkCustomer(req.Customer, func() string { return "customer" }); err != nil {
		return nil, nil, err
	}
	bc := BatchCustomer{Customer: req.Customer, Events: req.Events, Features: req.Features}
	xs, problems, err := sc.vectors([]BatchCustomer{bc}, 0, "")
	if err != nil {
		return nil, nil, err
	}
	if problems[0] != nil {
		return nil, nil, problems[0]
	}
	cp, err := sc.predict(req.Customer, xs[0], p.opts.TopFeatures)
	if errors.Is(err, errNotFinite) {
		return nil, nil, unprocessable("field %q: %v", inputField(bc), err)
	}
	if err != nil {
		return nil, nil, err
	}
	return &Prediction{Merchant: sc.merchant.ID, AsOf: sc.asOf, TimeZone: sc.loc.String(), Provenance: sc.model.prov, CustomerPrediction: cp}, sc.model, nil
}

// inputField names what a customer's features came from.
func inputField(bc BatchCustomer) string {
	if bc.Features != nil {
		return "features"
	}
	return "events"
}

// batch answers each customer on its own: a customer whose input is refused
// gets a problem entry, the others their predictions. Only what the whole
// request shares (merchant, token, model version, as_of, the list's length)
// fails the request.
func (p *predictor) batch(ctx context.Context, c *auth.Claims, req *PredictBatchRequest) (*BatchPrediction, *servedModel, error) {
	sc, err := p.resolve(ctx, c, req.Merchant, req.ModelVersion, req.AsOf)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case len(req.Customers) == 0:
		return nil, nil, badRequest("field \"customers\": empty; send 1 to %d customers", p.opts.MaxBatch)
	case len(req.Customers) > p.opts.MaxBatch:
		return nil, nil, &httpError{status: http.StatusRequestEntityTooLarge, typ: typeTooLarge,
			detail: fmt.Sprintf("field \"customers\": %d customers, at most %d per batch", len(req.Customers), p.opts.MaxBatch)}
	}
	// Features, then predictions, in contiguous chunks on every core.
	xs := make([][]float64, len(req.Customers))
	problems := make([]error, len(req.Customers))
	err = inChunks(len(xs), func(lo, hi int) error {
		v, pr, err := sc.vectors(req.Customers[lo:hi], lo, "customers[%d].")
		copy(xs[lo:hi], v)
		copy(problems[lo:hi], pr)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	out := &BatchPrediction{Merchant: sc.merchant.ID, AsOf: sc.asOf, TimeZone: sc.loc.String(),
		Provenance: sc.model.prov, Results: make([]BatchItem, len(xs))}
	sc.fillDates(sc.model.m.Horizon)
	err = inChunks(len(xs), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			bc := &req.Customers[i]
			if problems[i] != nil {
				out.Results[i] = problemItem(bc.Customer, problems[i])
				continue
			}
			cp, err := sc.predict(bc.Customer, xs[i], p.opts.TopFeatures)
			if errors.Is(err, errNotFinite) {
				out.Results[i] = problemItem(bc.Customer, unprocessable("field %q: %v", fmt.Sprintf("customers[%d].%s", i, inputField(*bc)), err))
				continue
			}
			if err != nil {
				return err
			}
			out.Results[i] = BatchItem{Customer: bc.Customer, Within: &cp.Within, ExpectedDays: cp.ExpectedDays,
				ExpectedDayIfBuys: cp.ExpectedDayIfBuys, PredictedDay: cp.PredictedDay, PredictedDate: cp.PredictedDate,
				MostLikelyDay: cp.MostLikelyDay, MostLikelyDate: cp.MostLikelyDate, Explanation: &cp.Explanation}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, sc.model, nil
}

// problemItem is the batch entry of a customer refused with err.
func problemItem(customer string, err error) BatchItem {
	he := classify(err)
	return BatchItem{Customer: customer, Error: he.detail, Problem: &ItemProblem{
		Type: he.typ, Title: http.StatusText(he.status), Status: he.status, Detail: he.detail,
	}}
}

// problemCount is how many of a batch's customers got a problem entry.
func problemCount(items []BatchItem) int {
	n := 0
	for i := range items {
		if items[i].Problem != nil {
			n++
		}
	}
	return n
}

// minChunk is the fewest customers worth a goroutine of their own.
const minChunk = 64

// inChunks splits [0, n) into up to GOMAXPROCS contiguous chunks of at least
// minChunk, runs f on each concurrently and returns the error of the
// earliest chunk that failed.
func inChunks(n int, f func(lo, hi int) error) error {
	k := min(runtime.GOMAXPROCS(0), n/minChunk)
	if k <= 1 {
		return f(0, n)
	}
	errs := make([]error, k)
	var wg sync.WaitGroup
	for c := range k {
		lo, hi := c*n/k, (c+1)*n/k
		wg.Go(func() { errs[c] = f(lo, hi) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// vectors returns each customer's feature vector: the given one, checked, or
// one built from the events by the training feature builder at as_of. When a
// customer has none, problems[i] says why (bad input, no event before
// as_of): that customer's own 4xx. err is a failure of the server, for the
// whole request. prefix formats the index into field names ("" for the
// single route, whose customer id is checked before); cs[0] is customer
// offset of the request.
func (sc *scope) vectors(cs []BatchCustomer, offset int, prefix string) (xs [][]float64, problems []error, err error) {
	field := func(i int, name string) string {
		if prefix == "" {
			return name
		}
		return fmt.Sprintf(prefix, offset+i) + name
	}
	m := sc.model.m
	d := m.Schema.Len()
	xs = make([][]float64, len(cs))
	problems = make([]error, len(cs))
	var b *feature.Builder
	var evs []model.Event // one customer's events, reused
	for i, bc := range cs {
		if prefix != "" {
			if err := checkCustomer(bc.Customer, func() string { return field(i, "customer") }); err != nil {
				problems[i] = err
				continue
			}
		}
		switch {
		case bc.Features != nil && bc.Events != nil:
			problems[i] = badRequest("%s and %s: send one of them, not both", field(i, "events"), field(i, "features"))
			continue
		case bc.Features != nil:
			if len(bc.Features) != d {
				problems[i] = badRequest("field %q: %d values, but model version %d's feature schema %s has %d",
					field(i, "features"), len(bc.Features), sc.model.prov.ModelVersion, m.Schema.Hash, d)
				continue
			}
			for j, v := range bc.Features {
				if !(math.Abs(v) <= MaxFeatureValue) { // NaN fails too
					problems[i] = unprocessable("field %q: %g (%s) is outside [-%g, %g]",
						fmt.Sprintf("%s[%d]", field(i, "features"), j), v, m.Schema.Names[j], MaxFeatureValue, MaxFeatureValue)
					break
				}
			}
			if problems[i] == nil {
				xs[i] = bc.Features
			}
			continue
		case bc.Events == nil:
			problems[i] = badRequest("%s or %s: one is required", field(i, "events"), field(i, "features"))
			continue
		}
		// The builder keys customers by id; the index keeps repeated ids
		// apart. Every event is checked before any reaches the builder, so
		// that a refused customer leaves nothing in it.
		key := strconv.Itoa(i)
		if cap(evs) < len(bc.Events) {
			evs = make([]model.Event, 0, max(len(bc.Events), 2*cap(evs)))
		}
		evs = evs[:0]
		for j, ev := range bc.Events {
			e, err := ev.event(key, func() string { return fmt.Sprintf("%s[%d]", field(i, "events"), j) })
			if err != nil {
				problems[i] = err
				break
			}
			evs = append(evs, e)
		}
		if problems[i] != nil {
			continue
		}
		if b == nil {
			b, err = feature.NewBuilder(feature.Config{Cutoffs: []time.Time{sc.asOf}, Location: sc.loc, Allow: sc.model.allow})
			if err != nil {
				return nil, nil, fmt.Errorf("predict: %w", err)
			}
			if got := b.Schema().Hash; got != m.Schema.Hash {
				return nil, nil, fmt.Errorf("predict: builder schema %s, model version %d has %s", got, sc.model.prov.ModelVersion, m.Schema.Hash)
			}
		}
		for j, e := range evs {
			if err := b.Add(e); err != nil {
				problems[i] = badRequest("field %q: %v", fmt.Sprintf("%s[%d]", field(i, "events"), j), err)
				break
			}
		}
	}
	if b != nil {
		for _, row := range b.Rows() {
			i, err := strconv.Atoi(row.Customer)
			if err != nil || i < 0 || i >= len(cs) {
				return nil, nil, fmt.Errorf("predict: builder row for %q", row.Customer)
			}
			if problems[i] == nil {
				xs[i] = row.X
			}
		}
	}
	for i := range cs {
		if xs[i] == nil && problems[i] == nil {
			problems[i] = unprocessable("field %q: %v (as_of %s)", field(i, "events"), errNoHistory, sc.asOf.Format(time.RFC3339))
		}
	}
	return xs, problems, nil
}

// event converts e to a model.Event of customer key; field names e in an
// error, formatted only then.
func (e EventInput) event(key string, field func() string) (model.Event, error) {
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		return model.Event{}, badRequest("field %q: time %s is not an RFC 3339 time such as 2026-11-27T16:00:00Z", field(), echo(e.Time))
	}
	k, err := model.ParseKind(e.Kind)
	if err != nil {
		return model.Event{}, badRequest("field %q: unknown event kind %s (want view, cart, favorite or purchase)", field(), echo(e.Kind))
	}
	ev := model.Event{Customer: key, Time: t.UTC(), Kind: k, Item: e.Item, Category: e.Category}
	if e.Amount != nil {
		// Beyond model.MaxAmount a sum of amounts could overflow to ±Inf.
		if a := *e.Amount; !(math.Abs(a) <= model.MaxAmount) { // NaN fails too
			return model.Event{}, unprocessable("field %q: %g is outside [-%g, %g], the amounts Kairos accepts",
				field()+".amount", a, model.MaxAmount, model.MaxAmount)
		}
		ev.Amount, ev.HasAmount = *e.Amount, true
	}
	return ev, nil
}

// predict scores x and explains the score; errNotFinite when a number of the
// answer is not finite (JSON cannot carry it, and it means nothing).
func (sc *scope) predict(customer string, x []float64, top int) (CustomerPrediction, error) {
	m := sc.model.m
	pr, err := m.Predict(x)
	if err != nil {
		return CustomerPrediction{}, fmt.Errorf("predict: %w", err)
	}
	cp := CustomerPrediction{
		Customer: customer,
		Within: Within{D1: pr.Within[0], D3: pr.Within[1], D7: pr.Within[2], D14: pr.Within[3], D30: pr.Within[4],
			D60: pr.Beyond[0], D90: pr.Beyond[1]},
		ExpectedDays:      pr.ExpectedDays,
		ExpectedDayIfBuys: pr.ExpectedDayIfBuys,
		PredictedDay:      pr.MedianDay,
		PredictedDate:     sc.dayDate(pr.MedianDay),
		MostLikelyDay:     pr.MostLikelyDay,
		MostLikelyDate:    sc.dayDate(pr.MostLikelyDay),
		Explanation:       explain(m, x, top),
	}
	if !cp.finite() {
		return CustomerPrediction{}, errNotFinite
	}
	return cp, nil
}

// finite reports whether every number the answer carries is finite.
func (cp *CustomerPrediction) finite() bool {
	ok := func(vs ...float64) bool {
		for _, v := range vs {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
		}
		return true
	}
	w := &cp.Within
	if !ok(w.D1, w.D3, w.D7, w.D14, w.D30, w.D60, w.D90, cp.ExpectedDays, cp.ExpectedDayIfBuys, cp.Explanation.Score) {
		return false
	}
	for _, fs := range [][]FeatureContribution{cp.Explanation.Up, cp.Explanation.Down} {
		for _, f := range fs {
			if !ok(f.Value, f.RawValue, f.Standardized, f.Contribution) {
				return false
			}
		}
	}
	return true
}

// explain ranks the features by their push on the score of x, as the model
// attributes it (hazard.Model.Contributions: w_j·z_j for the linear model,
// exact; ∂f/∂z_j·z_j for the MLP; 0 for a signal the customer lacks).
func explain(m *hazard.Model, x []float64, top int) Explanation {
	d := len(x)
	zc := make([]float64, 2*d) // one allocation for z and contrib
	z, contrib := zc[:d:d], zc[d:]
	var ex Explanation
	ex.Score, ex.Method = m.Contributions(x, z, contrib)
	order := make([]int, d)
	for j := range order {
		order[j] = j
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case contrib[a] > contrib[b]:
			return -1
		case contrib[a] < contrib[b]:
			return 1
		}
		return 0
	})
	fc := func(j int) FeatureContribution {
		name := m.Schema.Names[j]
		// A transformed value no feature builds (one sent as a vector, past
		// log1p's range) saturates rather than failing the answer.
		raw := max(min(feature.Untransform(m.Schema.Transforms[j], x[j]), math.MaxFloat64), -math.MaxFloat64)
		return FeatureContribution{Feature: name, Value: x[j], RawValue: raw, Unit: feature.Unit(name), Standardized: z[j], Contribution: contrib[j]}
	}
	// Up and Down share one array (each capped at its half), never nil:
	// no feature either way encodes as [].
	n := max(0, min(top, d))
	both := make([]FeatureContribution, 2*n)
	ex.Up, ex.Down = both[:0:n], both[n:n:2*n]
	for _, j := range order {
		if len(ex.Up) == top || contrib[j] <= 0 {
			break
		}
		ex.Up = append(ex.Up, fc(j))
	}
	for i := d - 1; i >= 0; i-- {
		j := order[i]
		if len(ex.Down) == top || contrib[j] >= 0 {
			break
		}
		ex.Down = append(ex.Down, fc(j))
	}
	return ex
}

// ---- caches ----

// servedModel is a parsed model version ready to serve.
type servedModel struct {
	m     *hazard.Model
	allow []string // the builder's feature mask; nil for the full schema
	prov  Provenance
	// provJSON is prov encoded, once: every answer of the version carries it.
	provJSON []byte
}

func parseVersion(mv protocol.ModelVersion) (*servedModel, error) {
	m, err := hazard.Unmarshal(mv.Model, mv.SchemaHash)
	if err != nil {
		return nil, fmt.Errorf("model version %d: %w", mv.Version, err)
	}
	full, err := feature.NewSchema(nil)
	if err != nil {
		return nil, fmt.Errorf("model version %d: %w", mv.Version, err)
	}
	sm := &servedModel{m: m, prov: Provenance{
		ModelVersion: mv.Version, Round: mv.Round, PublishedAt: mv.PublishedAt.UTC(), SchemaHash: mv.SchemaHash,
		PolicyHash: mv.PolicyHash, Merge: mv.Merge,
		// Per-merchant ε and weights are for compliance and admin (as
		// GET /v1/models gives them), and neither role predicts: a
		// prediction never carries them.
		Contributions: []protocol.Contribution{}, ContributionsRedacted: len(mv.Contributions) > 0,
	}}
	if m.Schema.Hash != full.Hash {
		sm.allow = m.Schema.Names
	}
	if sm.provJSON, err = json.Marshal(sm.prov); err != nil {
		return nil, fmt.Errorf("model version %d: provenance: %w", mv.Version, err)
	}
	return sm, nil
}

// modelCache holds parsed model versions and the active version.
type modelCache struct {
	svc Service
	ttl time.Duration
	now func() time.Time

	mu        sync.RWMutex
	byVersion map[int]*servedModel
	// checked is when a pinned version was last found not withdrawn: it
	// is looked up again after ttl, as the active version is, so that a
	// rollback's withdrawal reaches pinned predictions.
	checked map[int]time.Time

	active     atomic.Pointer[activeModel]
	refreshing sync.Mutex // one active-version lookup at a time
}

type activeModel struct {
	sm *servedModel
	at time.Time
}

// forget drops every cached version and the active one, so that the next
// request looks them up: called when this replica's rollback returns, so
// that it serves neither the versions it withdrew nor the old active one.
// Requests already past the cache finish with what they have.
func (c *modelCache) forget() {
	c.mu.Lock()
	clear(c.byVersion)
	clear(c.checked)
	c.mu.Unlock()
	c.active.Store(nil)
}

// get returns version (0: the active one).
func (c *modelCache) get(ctx context.Context, version int) (*servedModel, error) {
	if version > 0 {
		c.mu.RLock()
		sm, at := c.byVersion[version], c.checked[version]
		c.mu.RUnlock()
		if sm != nil && c.now().Sub(at) < c.ttl {
			return sm, nil
		}
		mv, err := c.svc.Model(ctx, version)
		if err != nil {
			if errors.Is(err, aggregator.ErrWithdrawn) {
				c.mu.Lock()
				delete(c.byVersion, version)
				delete(c.checked, version)
				c.mu.Unlock()
			}
			return nil, err
		}
		if sm, err = c.put(mv); err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.checked[version] = c.now()
		c.mu.Unlock()
		return sm, nil
	}
	a := c.active.Load()
	if a != nil && c.now().Sub(a.at) < c.ttl {
		return a.sm, nil
	}
	if a != nil {
		// Stale: one caller looks the active version up, the others keep
		// serving the one they have meanwhile.
		if !c.refreshing.TryLock() {
			return a.sm, nil
		}
	} else {
		c.refreshing.Lock()
	}
	defer c.refreshing.Unlock()
	if b := c.active.Load(); b != a && b != nil {
		return b.sm, nil
	}
	mv, err := c.svc.Model(ctx, 0)
	if err != nil {
		return nil, err
	}
	sm, err := c.put(mv)
	if err != nil {
		return nil, err
	}
	c.active.Store(&activeModel{sm: sm, at: c.now()})
	return sm, nil
}

// put parses mv unless its version is cached already.
func (c *modelCache) put(mv protocol.ModelVersion) (*servedModel, error) {
	c.mu.RLock()
	sm := c.byVersion[mv.Version]
	c.mu.RUnlock()
	if sm != nil {
		return sm, nil
	}
	sm, err := parseVersion(mv)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byVersion) >= maxCachedModels {
		for v := range c.byVersion { // evict any one; versions reload on demand
			delete(c.byVersion, v)
			delete(c.checked, v)
			break
		}
	}
	c.byVersion[mv.Version] = sm
	return sm, nil
}

// merchantCache holds the enrolled merchants with their time zones.
type merchantCache struct {
	svc Service
	ttl time.Duration
	now func() time.Time

	snap atomic.Pointer[merchantSnap]
	mu   sync.Mutex // one reload at a time
}

type merchantSnap struct {
	byID map[string]servedMerchant
	at   time.Time
}

type servedMerchant struct {
	m   aggregator.Merchant
	loc *time.Location
}

// get returns merchant id and its location; a 404 when it is not enrolled.
func (c *merchantCache) get(ctx context.Context, id string) (aggregator.Merchant, *time.Location, error) {
	s := c.snap.Load()
	now := c.now()
	if s != nil {
		age := now.Sub(s.at)
		if sm, ok := s.byID[id]; ok && age < c.ttl {
			return sm.m, sm.loc, nil
		} else if !ok && age < merchantMissRefresh {
			return aggregator.Merchant{}, nil, notEnrolled(id)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.snap.Load(); t != s && t != nil {
		s = t // reloaded while we waited
	} else {
		ms, err := c.svc.Merchants(ctx)
		if err != nil {
			return aggregator.Merchant{}, nil, err
		}
		s = &merchantSnap{byID: make(map[string]servedMerchant, len(ms)), at: c.now()}
		for _, m := range ms {
			loc, err := time.LoadLocation(m.TimeZone)
			if err != nil || m.TimeZone == "" {
				loc = time.UTC // enrolment checked it; an unknown zone here is the host's tz data
			}
			s.byID[m.ID] = servedMerchant{m: m, loc: loc}
		}
		c.snap.Store(s)
	}
	sm, ok := s.byID[id]
	if !ok {
		return aggregator.Merchant{}, nil, notEnrolled(id)
	}
	return sm.m, sm.loc, nil
}

func notEnrolled(id string) error {
	return &httpError{status: http.StatusNotFound, typ: typeNotFound, detail: fmt.Sprintf("merchant %q is not enrolled", id)}
}
