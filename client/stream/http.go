package stream

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
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
// GET /v1/scores/{customer} and GET /healthz. It has no authentication: bind
// it to loopback or a private interface (the scores are the merchant's, under
// the merchant's own customer ids).
func (p *Processor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.Stats())
	})
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
