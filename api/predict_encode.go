package api

// Predict response encoding. encoding/json's reflection was a tenth of the
// server's CPU per prediction once decoding was fast, so the predict answers
// are appended by hand, with the provenance (the same for every answer of a
// model version) encoded once per version. The output is byte for byte what
// json.Marshal gives for the same value (TestPredictEncodeMatchesJSON and
// FuzzPredictEncode check it); strings that need escaping, which the fast
// path does not handle, fall back to encoding/json.
//
// A non-finite number, which JSON cannot carry, is never written and never a
// 500: predict refuses such an answer before it gets here, and should one
// arrive anyway, encodePrediction returns errNotFinite (the caller's 422) and
// encodeBatch turns that customer's entry into its problem entry.

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// writePredictJSON answers with status 200 and b, as writeJSON does.
func writePredictJSON(w http.ResponseWriter, b []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(http.StatusOK)
	// Once the status is on the wire nothing else can be sent, so a failed
	// write (the client went away) is not reported.
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// jsonWriter appends JSON; ok turns false when a value needs encoding/json
// (a time it refuses), and the caller then marshals the whole value with
// encoding/json instead. nonFinite is set by a NaN or an infinity, which
// neither can write.
type jsonWriter struct {
	b         []byte
	ok        bool
	nonFinite bool
}

func (j *jsonWriter) raw(s string) { j.b = append(j.b, s...) }

// str appends s quoted. Printable ASCII without the characters encoding/json
// escapes (" \ < > &) is copied; anything else goes through encoding/json.
func (j *jsonWriter) str(s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil {
				j.ok = false
				return
			}
			j.b = append(j.b, q...)
			return
		}
	}
	j.b = append(j.b, '"')
	j.b = append(j.b, s...)
	j.b = append(j.b, '"')
}

// float appends f as encoding/json does: the shortest representation, in
// exponent form below 1e-6 and from 1e21 on, with a two-digit negative
// exponent shortened (1e-07 → 1e-7).
func (j *jsonWriter) float(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		j.nonFinite = true
		j.b = append(j.b, '0') // a placeholder; the caller discards the value
		return
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	j.b = strconv.AppendFloat(j.b, f, format, -1, 64)
	if format == 'e' {
		if n := len(j.b); n >= 4 && j.b[n-4] == 'e' && j.b[n-3] == '-' && j.b[n-2] == '0' {
			j.b[n-2] = j.b[n-1]
			j.b = j.b[:n-1]
		}
	}
}

func (j *jsonWriter) int(v int) { j.b = strconv.AppendInt(j.b, int64(v), 10) }

// time appends t as time.Time.MarshalJSON does; a year outside 0..9999,
// which it refuses, sends the value to encoding/json.
func (j *jsonWriter) time(t time.Time) {
	if y := t.Year(); y < 0 || y > 9999 {
		j.ok = false
		return
	}
	j.b = append(j.b, '"')
	j.b = t.AppendFormat(j.b, time.RFC3339Nano)
	j.b = append(j.b, '"')
}

func (j *jsonWriter) within(w *Within) {
	j.raw(`{"1d":`)
	j.float(w.D1)
	j.raw(`,"3d":`)
	j.float(w.D3)
	j.raw(`,"7d":`)
	j.float(w.D7)
	j.raw(`,"14d":`)
	j.float(w.D14)
	j.raw(`,"30d":`)
	j.float(w.D30)
	j.raw(`,"60d":`)
	j.float(w.D60)
	j.raw(`,"90d":`)
	j.float(w.D90)
	j.raw(`}`)
}

func (j *jsonWriter) contributions(fs []FeatureContribution) {
	if fs == nil {
		j.raw("null")
		return
	}
	j.raw("[")
	for i := range fs {
		f := &fs[i]
		if i > 0 {
			j.raw(",")
		}
		j.raw(`{"feature":`)
		j.str(f.Feature)
		j.raw(`,"value":`)
		j.float(f.Value)
		j.raw(`,"raw_value":`)
		j.float(f.RawValue)
		j.raw(`,"unit":`)
		j.str(f.Unit)
		j.raw(`,"standardized":`)
		j.float(f.Standardized)
		j.raw(`,"contribution":`)
		j.float(f.Contribution)
		j.raw("}")
	}
	j.raw("]")
}

func (j *jsonWriter) explanation(e *Explanation) {
	j.raw(`{"method":`)
	j.str(e.Method)
	j.raw(`,"score":`)
	j.float(e.Score)
	j.raw(`,"up":`)
	j.contributions(e.Up)
	j.raw(`,"down":`)
	j.contributions(e.Down)
	j.raw("}")
}

// head appends the fields a single and a batch answer share, up to and
// including the provenance.
func (j *jsonWriter) head(merchant string, asOf time.Time, zone string, prov []byte) {
	j.raw(`{"merchant":`)
	j.str(merchant)
	j.raw(`,"as_of":`)
	j.time(asOf)
	j.raw(`,"time_zone":`)
	j.str(zone)
	j.raw(`,"provenance":`)
	j.b = append(j.b, prov...)
}

// encodePrediction returns the JSON of p, whose Provenance encodes as prov.
func encodePrediction(p *Prediction, prov []byte) ([]byte, error) {
	j := jsonWriter{b: make([]byte, 0, 1024+len(prov)), ok: true}
	j.head(p.Merchant, p.AsOf, p.TimeZone, prov)
	c := &p.CustomerPrediction
	j.raw(`,"customer":`)
	j.str(c.Customer)
	j.raw(`,"within":`)
	j.within(&c.Within)
	j.raw(`,"expected_days":`)
	j.float(c.ExpectedDays)
	j.raw(`,"expected_day_if_buys":`)
	j.float(c.ExpectedDayIfBuys)
	j.raw(`,"predicted_day":`)
	j.int(c.PredictedDay)
	j.raw(`,"predicted_date":`)
	j.str(c.PredictedDate)
	j.raw(`,"most_likely_day":`)
	j.int(c.MostLikelyDay)
	j.raw(`,"most_likely_date":`)
	j.str(c.MostLikelyDate)
	j.raw(`,"explanation":`)
	j.explanation(&c.Explanation)
	j.raw("}")
	if j.nonFinite {
		return nil, errNotFinite
	}
	if !j.ok {
		return json.Marshal(p)
	}
	return j.b, nil
}

// encodeBatch returns the JSON of p, whose Provenance encodes as prov. An
// entry with a non-finite number becomes that customer's problem entry, in
// p as in the JSON.
func encodeBatch(p *BatchPrediction, prov []byte) ([]byte, error) {
	j := jsonWriter{b: make([]byte, 0, 256+len(prov)+len(p.Results)*900), ok: true}
	j.head(p.Merchant, p.AsOf, p.TimeZone, prov)
	j.raw(`,"results":`)
	if p.Results == nil {
		j.raw("null")
	} else {
		j.raw("[")
		for i := range p.Results {
			if i > 0 {
				j.raw(",")
			}
			start := len(j.b)
			j.item(&p.Results[i])
			if j.nonFinite {
				j.b, j.nonFinite = j.b[:start], false
				p.Results[i] = problemItem(p.Results[i].Customer,
					unprocessable("field %q: %v", fmt.Sprintf("customers[%d]", i), errNotFinite))
				j.item(&p.Results[i])
			}
		}
		j.raw("]")
	}
	j.raw("}")
	if !j.ok {
		return json.Marshal(p)
	}
	return j.b, nil
}

// item appends one batch entry.
func (j *jsonWriter) item(it *BatchItem) {
	// The omitempty fields are left out at their zero values, as
	// encoding/json does (a float's zero includes −0).
	j.raw(`{"customer":`)
	j.str(it.Customer)
	if pr := it.Problem; pr != nil {
		j.raw(`,"problem":{"type":`)
		j.str(pr.Type)
		j.raw(`,"title":`)
		j.str(pr.Title)
		j.raw(`,"status":`)
		j.int(pr.Status)
		j.raw(`,"detail":`)
		j.str(pr.Detail)
		j.raw("}")
	}
	if it.Error != "" {
		j.raw(`,"error":`)
		j.str(it.Error)
	}
	if it.Within != nil {
		j.raw(`,"within":`)
		j.within(it.Within)
	}
	if it.ExpectedDays != 0 {
		j.raw(`,"expected_days":`)
		j.float(it.ExpectedDays)
	}
	if it.ExpectedDayIfBuys != 0 {
		j.raw(`,"expected_day_if_buys":`)
		j.float(it.ExpectedDayIfBuys)
	}
	if it.PredictedDay != 0 {
		j.raw(`,"predicted_day":`)
		j.int(it.PredictedDay)
	}
	if it.PredictedDate != "" {
		j.raw(`,"predicted_date":`)
		j.str(it.PredictedDate)
	}
	if it.MostLikelyDay != 0 {
		j.raw(`,"most_likely_day":`)
		j.int(it.MostLikelyDay)
	}
	if it.MostLikelyDate != "" {
		j.raw(`,"most_likely_date":`)
		j.str(it.MostLikelyDate)
	}
	if it.Explanation != nil {
		j.raw(`,"explanation":`)
		j.explanation(it.Explanation)
	}
	j.raw("}")
}
