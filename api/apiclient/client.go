// Package apiclient is a small Go client for the Kairos aggregator's HTTP API,
// used by the merchant client, the aggregator's own commands and partner apps.
// It sends a bearer token, honours the caller's context, and turns every
// non-2xx answer into a *Problem. It never retries: callers decide that (see
// Problem.Temporary).
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
)

// Size limits of what the client reads back.
const (
	// MaxResponseSize bounds a successful response body (a model file is the largest).
	MaxResponseSize = 64 << 20
	// maxProblemSize bounds an error response body.
	maxProblemSize = 64 << 10
)

// MaxRetryAfter caps the wait a server's Retry-After asks for (Problem.RetryAfter):
// the API asks for seconds, and a longer answer from a broken or hostile server
// would hold a merchant's client asleep, its update pending, with nothing to show.
const MaxRetryAfter = 10 * time.Minute

// Client calls one Kairos aggregator. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	token    string
	hc       *http.Client
	ua       string
	insecure bool
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, TLS roots, timeouts). The
// default is a client with a 60 s overall timeout. New uses a copy that
// follows no redirect.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.ua = ua } }

// WithInsecureHTTP allows a plain http:// base URL to a host that is not
// loopback: the bearer token then crosses the network in clear, which only a
// private network (a container network, a VPN) makes acceptable.
func WithInsecureHTTP() Option { return func(c *Client) { c.insecure = true } }

// ErrInsecureHTTP is matched by the error New returns for a plain http://
// base URL to a host that is not loopback, without WithInsecureHTTP.
var ErrInsecureHTTP = errors.New("plain http to a host that is not loopback would send the token in clear")

// Loopback reports whether host (a URL's host, with or without a port) is
// localhost or a loopback address.
func Loopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// New returns a client for the aggregator at baseURL (an absolute http or
// https URL, e.g. "https://agg.example:8700") that authenticates with token.
// The token may be empty for the unauthenticated endpoints (JWKS, health).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("new api client: base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("new api client: base url %q: want http:// or https:// with a host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("new api client: base url %q: no query, fragment or user info allowed", baseURL)
	}
	if strings.ContainsAny(token, " \t\r\n") {
		return nil, errors.New("new api client: token contains white space")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, token: token, hc: &http.Client{Timeout: 60 * time.Second}, ua: "kairos-apiclient/1"}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		return nil, errors.New("new api client: nil http client")
	}
	// No redirect is followed: Go forwards the Authorization header to the
	// same host on any scheme, so an https server (or a proxy in front of
	// it) answering 301 to http:// would have the token sent in clear,
	// past the check below. The API never redirects canonical paths.
	hc := *c.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	if u.Scheme == "http" && !c.insecure && !Loopback(u.Host) {
		return nil, fmt.Errorf("new api client: base url %q: %w (use https://, or allow it explicitly for a private network)", baseURL, ErrInsecureHTTP)
	}
	return c, nil
}

// CurrentRound returns the round the token's merchant should train for.
func (c *Client) CurrentRound(ctx context.Context) (protocol.Round, error) {
	var r protocol.Round
	err := c.do(ctx, http.MethodGet, "/v1/rounds/current", nil, "", &r)
	return r, err
}

// SubmitUpdate uploads a sealed envelope for round roundID and returns the
// aggregator's receipt once the update is durably accepted.
func (c *Client) SubmitUpdate(ctx context.Context, roundID string, envelope []byte) (protocol.Receipt, error) {
	var rc protocol.Receipt
	if roundID == "" {
		return rc, errors.New("submit update: empty round id")
	}
	err := c.do(ctx, http.MethodPost, "/v1/rounds/"+url.PathEscape(roundID)+"/updates",
		bytes.NewReader(envelope), "application/octet-stream", &rc)
	return rc, err
}

// ModelPage is one page of the model registry.
type ModelPage struct {
	Models []protocol.ModelVersion `json:"models"`
	// Next is the cursor of the following page (pass it as after); 0 on
	// the last page.
	Next int64 `json:"next,omitempty"`
}

// ModelPage lists at most limit model versions above after, oldest first;
// a limit of 0 is the server's default.
func (c *Client) ModelPage(ctx context.Context, after int64, limit int) (ModelPage, error) {
	var p ModelPage
	if after < 0 || limit < 0 {
		return p, fmt.Errorf("list models: after %d and limit %d must not be negative", after, limit)
	}
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/models"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := c.do(ctx, http.MethodGet, path, nil, "", &p)
	return p, err
}

// Models lists the whole model registry, oldest first as the server orders
// it, following the pages' cursors.
func (c *Client) Models(ctx context.Context) ([]protocol.ModelVersion, error) {
	var all []protocol.ModelVersion
	var after int64
	for {
		p, err := c.ModelPage(ctx, after, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Models...)
		if p.Next == 0 {
			return all, nil
		}
		if p.Next <= after {
			return nil, fmt.Errorf("list models: the page after %d gave cursor %d, which does not advance", after, p.Next)
		}
		after = p.Next
	}
}

// Model returns one model version with its model file; 0 means the active one.
func (c *Client) Model(ctx context.Context, version int) (protocol.ModelVersion, error) {
	var mv protocol.ModelVersion
	if version < 0 {
		return mv, fmt.Errorf("get model: version %d < 0", version)
	}
	err := c.do(ctx, http.MethodGet, "/v1/models/"+versionPath(version), nil, "", &mv)
	return mv, err
}

// Rollback makes version the active model (admin) and returns it.
func (c *Client) Rollback(ctx context.Context, version int) (protocol.ModelVersion, error) {
	var mv protocol.ModelVersion
	if version < 1 {
		return mv, fmt.Errorf("rollback: version %d < 1", version)
	}
	err := c.do(ctx, http.MethodPost, "/v1/models/"+strconv.Itoa(version)+":rollback", nil, "", &mv)
	return mv, err
}

// RevokeToken makes the aggregator refuse the token jti until expiresAt (admin).
func (c *Client) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) (protocol.TokenRevocation, error) {
	var out protocol.TokenRevocation
	body, err := json.Marshal(protocol.TokenRevocation{JTI: jti, ExpiresAt: expiresAt})
	if err != nil {
		return out, fmt.Errorf("revoke token: %w", err)
	}
	err = c.do(ctx, http.MethodPost, "/v1/tokens:revoke", bytes.NewReader(body), "application/json", &out)
	return out, err
}

// Enrol enrols a merchant (admin) and returns it with a merchant token.
func (c *Client) Enrol(ctx context.Context, req protocol.EnrolRequest) (protocol.Enrolment, error) {
	var e protocol.Enrolment
	body, err := json.Marshal(req)
	if err != nil {
		return e, fmt.Errorf("enrol: %w", err)
	}
	err = c.do(ctx, http.MethodPost, "/v1/merchants", bytes.NewReader(body), "application/json", &e)
	return e, err
}

// Merchants lists the enrolled merchants (admin).
func (c *Client) Merchants(ctx context.Context) ([]protocol.MerchantInfo, error) {
	var out struct {
		Merchants []protocol.MerchantInfo `json:"merchants"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/merchants", nil, "", &out)
	return out.Merchants, err
}

// Budgets lists every merchant's ε spent against its cap (compliance, admin).
func (c *Client) Budgets(ctx context.Context) ([]protocol.BudgetInfo, error) {
	var out struct {
		Budgets []protocol.BudgetInfo `json:"budgets"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/budgets", nil, "", &out)
	return out.Budgets, err
}

// JWKS fetches the aggregator's token verification keys.
func (c *Client) JWKS(ctx context.Context) ([]auth.PublicKey, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/.well-known/jwks.json", nil, "", &raw); err != nil {
		return nil, err
	}
	return auth.ParseJWKS(raw)
}

// Ready reports whether the aggregator answers /readyz with 200.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, "", nil)
}

func versionPath(v int) string {
	if v == 0 {
		return "active"
	}
	return strconv.Itoa(v)
}

// do sends one request and decodes a 2xx JSON answer into out (when non-nil).
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	op := strings.ToLower(method) + " " + path
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		p := readProblem(resp)
		p.Detail = fmt.Sprintf("%s: redirected to %q, not followed (the bearer token would go with it); use the aggregator's final URL", op, resp.Header.Get("Location"))
		return p
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readProblem(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProblemSize))
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", op, err)
	}
	if len(data) > MaxResponseSize {
		return fmt.Errorf("%s: response larger than %d bytes", op, MaxResponseSize)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode response: %w", op, err)
	}
	return nil
}

// readProblem turns a non-2xx response into a *Problem, whether or not the
// body is a problem document (a proxy may answer with plain text).
func readProblem(resp *http.Response) *Problem {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemSize))
	p := &Problem{}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		if err := json.Unmarshal(data, p); err != nil {
			p = &Problem{}
		}
	}
	if p.Status == 0 || p.Status != resp.StatusCode {
		p.Status = resp.StatusCode
	}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(resp.StatusCode)
	}
	if p.Detail == "" && mt != "application/problem+json" {
		p.Detail = strings.TrimSpace(string(bytes.ToValidUTF8(data[:min(len(data), 200)], nil)))
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		// Compared in seconds before the multiplication, which wraps
		// from 2^63/10^9 s on.
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			p.RetryAfter = MaxRetryAfter
			if n < int(MaxRetryAfter/time.Second) {
				p.RetryAfter = time.Duration(n) * time.Second
			}
		}
	}
	return p
}

// CancelRound fails the round id (the latest when empty) and opens the next
// one with the configuration in force (admin).
func (c *Client) CancelRound(ctx context.Context, id, reason string) (protocol.RoundCancel, error) {
	var out protocol.RoundCancel
	body, err := json.Marshal(protocol.RoundCancel{Round: id, Reason: reason})
	if err != nil {
		return out, fmt.Errorf("cancel round: %w", err)
	}
	err = c.do(ctx, http.MethodPost, "/v1/rounds:cancel", bytes.NewReader(body), "application/json", &out)
	return out, err
}

// StopMerchant tells the aggregator that the token's merchant sends no more
// updates, why, and its own cap if it stopped at it, so that rounds stop
// waiting for it (merchant).
func (c *Client) StopMerchant(ctx context.Context, stop protocol.MerchantStop) error {
	body, err := json.Marshal(stop)
	if err != nil {
		return fmt.Errorf("stop merchant: %w", err)
	}
	var out protocol.MerchantStop
	return c.do(ctx, http.MethodPost, "/v1/merchants/me:stop", bytes.NewReader(body), "application/json", &out)
}

// Reload asks the aggregator to re-read its configuration and policy (admin).
func (c *Client) Reload(ctx context.Context) (protocol.Reload, error) {
	var out protocol.Reload
	err := c.do(ctx, http.MethodPost, "/v1/config:reload", nil, "", &out)
	return out, err
}
