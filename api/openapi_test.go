package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/kairos-fl/kairos/aggregator"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.golden.json")

func TestOpenAPIGolden(t *testing.T) {
	got, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "openapi.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("OpenAPI document differs from %s; run go test ./api -run OpenAPIGolden -update and review the diff", golden)
	}
}

// TestOpenAPIMatchesRouter: every route the router serves is in the document
// and every documented path is served.
func TestOpenAPIMatchesRouter(t *testing.T) {
	f := newFixture(t, &fakeService{}, Options{})
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	rec := f.do(t, "GET", "/openapi.json", "", "", nil)
	if rec.Code != 200 {
		t.Fatalf("GET /openapi.json: %d", rec.Code)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	err := f.srv.router.Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := r.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := r.GetMethods()
		if err != nil {
			return err
		}
		path := muxVar.ReplaceAllString(tmpl, "{$1}")
		for _, m := range methods {
			if m == "HEAD" {
				continue
			}
			served[strings.ToLower(m)+" "+path] = true
			if _, ok := doc.Paths[path][strings.ToLower(m)]; !ok {
				t.Errorf("%s %s is served but not documented", m, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, ops := range doc.Paths {
		for m := range ops {
			if !served[m+" "+path] {
				t.Errorf("%s %s is documented but not served", m, path)
			}
		}
	}
}

// TestOpenAPIDescribesAnswers decodes real answers and checks that their
// members are exactly the documented properties (required ones present).
func TestOpenAPIDescribesAnswers(t *testing.T) {
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{})
	spec, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(spec, &doc); err != nil {
		t.Fatal(err)
	}
	check := func(name string, body []byte) {
		t.Helper()
		var got map[string]json.RawMessage
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Fatalf("no schema %s", name)
		}
		for k := range got {
			if _, ok := s.Properties[k]; !ok {
				t.Errorf("%s: answer has %q, not in the schema", name, k)
			}
		}
		for _, k := range s.Required {
			if _, ok := got[k]; !ok {
				t.Errorf("%s: answer lacks required %q", name, k)
			}
		}
	}
	rec := f.do(t, "GET", "/v1/rounds/current", f.tokens["m1"], "", nil)
	check("Round", rec.Body.Bytes())
	var round struct {
		Plan json.RawMessage `json:"plan"`
		ID   string          `json:"id"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &round)
	check("TrainingPlan", round.Plan)
	rec = f.do(t, "POST", "/v1/rounds/"+round.ID+"/updates", f.tokens["m1"], "application/octet-stream", f.honest(t, "m1"))
	check("Receipt", rec.Body.Bytes())
	rec = f.do(t, "GET", "/v1/models/active", f.tokens["m1"], "", nil)
	check("ModelVersion", rec.Body.Bytes())
	rec = f.do(t, "POST", "/v1/merchants", f.tokens["admin"], "application/json", enrolBodyIn(t, "m3", ""))
	check("Enrolment", rec.Body.Bytes())
	rec = f.do(t, "GET", "/v1/models/7", f.tokens["m1"], "", nil)
	check("Problem", rec.Body.Bytes())
	for _, name := range []string{"MerchantList", "BudgetList", "ModelList"} {
		if !slices.Contains(doc.Components.Schemas[name].Required, strings.ToLower(strings.TrimSuffix(name, "List"))+"s") {
			t.Errorf("%s does not require its list member", name)
		}
	}
}
