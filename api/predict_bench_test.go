package api

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model/synth"
)

// benchPredictBodies returns n single-customer bodies with the synthetic
// customers' events before as_of, and one batch of all of them.
func benchPredictBodies(b *testing.B, n int) ([][]byte, []byte) {
	b.Helper()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := synth.New(synth.Config{Seed: 7, Start: start, Days: 365, Customers: 3 * n, EventsPerCustomer: 15})
	if err != nil {
		b.Fatal(err)
	}
	asOf := start.Add(365 * 24 * time.Hour)
	var singles [][]byte
	var items []BatchCustomer
	for i := 0; len(items) < n; i++ {
		c := g.Customer(i)
		var evs []EventInput
		for _, e := range c.Events {
			if e.Time.Before(asOf) {
				a := e.Amount
				evs = append(evs, EventInput{Time: e.Time.Format(time.RFC3339), Kind: e.Kind.String(), Amount: &a, Item: e.Item, Category: e.Category})
			}
		}
		if len(evs) == 0 {
			continue
		}
		evs = evs[max(0, len(evs)-50):]
		items = append(items, BatchCustomer{Customer: c.ID, Events: evs})
		singles = append(singles, mustJSON(b, PredictRequest{Merchant: "m1", Customer: c.ID, Events: evs, AsOf: asOf.Format(time.RFC3339)}))
	}
	return singles, mustJSON(b, PredictBatchRequest{Merchant: "m1", AsOf: asOf.Format(time.RFC3339), Customers: items})
}

// BenchmarkPredict measures the handler path without the network: token
// check (in-memory revocations), rate limiter off, features from events or a
// vector, prediction, explanation, an in-memory audit append and the JSON
// answer.
func BenchmarkPredict(b *testing.B) {
	f := newPredictFixture(b, PredictOptions{})
	singles, batch := benchPredictBodies(b, 1000)
	feat := mustJSON(b, PredictRequest{Merchant: "m1", Customer: "c", Features: featureVec(1, 2)})
	run := func(b *testing.B, path string, body func(i int) []byte) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			req := httptest.NewRequest("POST", path, bytes.NewReader(body(i)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+f.tokens["m1"])
			rec := httptest.NewRecorder()
			f.srv.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	}
	b.Run("events", func(b *testing.B) { run(b, "/v1/predict", func(i int) []byte { return singles[i%len(singles)] }) })
	b.Run("features", func(b *testing.B) { run(b, "/v1/predict", func(int) []byte { return feat }) })
	b.Run(fmt.Sprintf("batch=%d", 1000), func(b *testing.B) { run(b, "/v1/predict:batch", func(int) []byte { return batch }) })
}
