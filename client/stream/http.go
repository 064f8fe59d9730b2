package stream

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/model/hazard"
)

// ScoreResponse is the body of GET /v1/scores/{customer}.
type ScoreResponse struct {
	Customer string `json:"customer"`
	// At is the time the features are computed at.
	At time.Time `json:"at"`
	// Within maps a horizon in days to P(purchase within it).
	Within        map[string]float64 `json:"within"`
	ExpectedDays  float64            `json:"expected_days"`
	MostLikelyDay int                `json:"most_likely_day"`
}

// Handler serves the merchant's own scores on the local network:
// GET /v1/scores/{customer}, GET /drift (drift.go) and GET /healthz. It has
// no authentication: bind it to loopback or a private interface (the scores
// are the merchant's, under the merchant's own customer ids). It answers
// only requests whose Host is an IP address or "localhost" (403 otherwise): a
// web page the merchant's browser opens could otherwise point a DNS name it
// controls at 127.0.0.1 (DNS rebinding) and read the scores with the page's
// own origin.
func (p *Processor) Handler() http.Handler {
	return hostGuard(p.routes())
}

// hostGuard refuses requests whose Host header names a host by DNS name.
func hostGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if _, err := netip.ParseAddr(host); err != nil && !strings.EqualFold(host, "localhost") {
			http.Error(w, "forbidden: the scores endpoint answers requests addressed to an IP address or localhost only", http.StatusForbidden)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (p *Processor) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.Stats())
	})
	mux.HandleFunc("GET /drift", p.serveDrift)
	mux.HandleFunc("GET /v1/scores/{customer}", func(w http.ResponseWriter, r *http.Request) {
		c := r.PathValue("customer")
		pr, at, err := p.Score(c)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, ErrUnknownCustomer) {
				status = http.StatusNotFound
			}
			http.Error(w, err.Error(), status)
			return
		}
		resp := ScoreResponse{Customer: c, At: at.UTC(), Within: map[string]float64{}, ExpectedDays: pr.ExpectedDays, MostLikelyDay: pr.MostLikelyDay}
		for i, h := range hazard.Horizons {
			resp.Within[strconv.Itoa(h)] = pr.Within[i]
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
	return mux
}
