package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
)

// apiRoute describes one /v1 route: the router is built from these and so is
// the OpenAPI document, so the two cannot drift apart.
type apiRoute struct {
	method, path string // path is a gorilla/mux template
	roles        []auth.Role
	op, summary  string
	body         any // nil, envelope{}, or a value of the JSON request type
	ok           int
	resp         any // a value of the JSON response type, or a document{} for another media type
	problems     []int
	h            handlerFunc
}

// envelope marks a sealed-envelope request body.
type envelope struct{}

// The list answers.
type (
	merchantList struct {
		Merchants []protocol.MerchantInfo `json:"merchants"`
	}
	modelList struct {
		Models []protocol.ModelVersion `json:"models" doc:"oldest first; at most limit versions above after"`
		Next   int64                   `json:"next,omitempty" doc:"the cursor of the following page (pass it as after); absent on the last page"`
	}
	budgetList struct {
		Budgets []protocol.BudgetInfo `json:"budgets"`
	}
)

func (s *Server) v1Routes() []apiRoute {
	routes := []apiRoute{
		{http.MethodPost, "/v1/merchants", rolesAdmin, "enrol", "Enrol a merchant and issue its merchant token",
			protocol.EnrolRequest{}, http.StatusCreated, protocol.Enrolment{}, []int{400, 409, 413, 415, 422}, s.enrol},
		{http.MethodGet, "/v1/merchants", rolesAdmin, "listMerchants", "List the enrolled merchants",
			nil, http.StatusOK, merchantList{}, nil, s.merchants},
		{http.MethodGet, "/v1/rounds/current", rolesMerchant, "currentRound", "The current round as the token's merchant sees it",
			nil, http.StatusOK, protocol.Round{}, []int{404, 410, 422, 429}, s.currentRound},
		{http.MethodPost, "/v1/rounds/{id}/updates", rolesMerchant, "submitUpdate", "Submit a sealed update for a round",
			envelope{}, http.StatusAccepted, protocol.Receipt{}, []int{400, 409, 413, 415, 422, 429}, s.submit},
		{http.MethodPost, "/v1/rounds/{id}/secure", rolesMerchant, "submitSecure", "Submit a sealed message for a stage of a secure-aggregation round",
			envelope{}, http.StatusAccepted, protocol.SecureReceipt{}, []int{400, 403, 404, 409, 413, 415, 422, 429}, s.submitSecure},
		{http.MethodGet, "/v1/rounds/{id}/secure", rolesMerchant, "secureStatus", "A secure-aggregation round's stage and the aggregator's message to the token's merchant",
			nil, http.StatusOK, protocol.SecureStatus{}, []int{403, 404, 429}, s.secureStatus},
		{http.MethodGet, "/v1/models", rolesModels, "listModels", "List the model registry (without model files)",
			nil, http.StatusOK, modelList{}, []int{400, 429}, s.models},
		// The rollback route comes first: "{version}" alone would also match "3:rollback".
		{http.MethodPost, "/v1/models/{version:[0-9]+}:rollback", rolesAdmin, "rollback", "Make another model version the active one. Rolling back to a lower version withdraws the versions above it on the active lineage and their descendants; rolling back to a withdrawn version restores it alone",
			nil, http.StatusOK, protocol.ModelVersion{}, []int{400, 404}, s.rollback},
		{http.MethodGet, "/v1/models/{version}", rolesModels, "getModel", `One model version with its model file; "active" for the active one. A version a rollback withdrew is 410 (type withdrawn), naming the seq of the rollback's audit entry`,
			nil, http.StatusOK, protocol.ModelVersion{}, []int{400, 404, 410, 429}, s.model},
		{http.MethodGet, "/v1/budgets", rolesCompliance, "listBudgets", "Every merchant's ε spent against its cap",
			nil, http.StatusOK, budgetList{}, nil, s.budgets},
	}
	return slices.Concat(routes, s.complianceRoutes(), s.predictRoutes(), s.tokenRoutes(), s.consoleRoutes(), s.adminRoutes())
}

// muxVar matches a gorilla/mux variable with a pattern, "{name:pattern}".
var muxVar = regexp.MustCompile(`\{([a-z]+):[^}]*\}`)

// queryParams are the query parameters of the operations that take any.
var queryParams = map[string][]any{
	"listModels": {
		map[string]any{"name": "after", "in": "query", "required": false,
			"description": "list the versions above this one (a previous page's next); 0 or absent for the first page; a value past the last version gives an empty page",
			"schema":      map[string]any{"type": "integer", "minimum": 0, "maximum": uint64(math.MaxUint64)}},
		map[string]any{"name": "limit", "in": "query", "required": false,
			"description": fmt.Sprintf("page size, %d when absent", aggregator.DefaultModelLimit),
			"schema":      map[string]any{"type": "integer", "minimum": 1, "maximum": aggregator.MaxModelLimit}},
	},
}

// OpenAPI returns the API's OpenAPI 3.1 document (JSON), served at
// /openapi.json.
func OpenAPI() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	problem := map[string]any{"$ref": "#/components/schemas/" + g.ref(reflect.TypeFor[problemDoc]())}
	paths := map[string]map[string]any{}
	for _, rt := range (&Server{}).v1Routes() {
		path := muxVar.ReplaceAllString(rt.path, "{$1}")
		roles := make([]string, len(rt.roles))
		for i, r := range rt.roles {
			roles[i] = string(r)
		}
		op := map[string]any{
			"operationId": rt.op,
			"summary":     rt.summary,
			"description": "Roles: " + strings.Join(roles, ", ") + ".",
			"security":    []any{map[string]any{"bearer": []string{}}},
		}
		var params []any
		for _, m := range regexp.MustCompile(`\{([a-z]+)\}`).FindAllStringSubmatch(path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		params = append(params, queryParams[rt.op]...)
		if params != nil {
			op["parameters"] = params
		}
		switch b := rt.body.(type) {
		case nil:
		case envelope:
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/octet-stream": map[string]any{"schema": map[string]any{"type": "string", "format": "binary",
					"description": "crypto/seal envelope: signed header, age-encrypted protocol.Update"}}}}
		default:
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(b))}}}
		}
		var content map[string]any
		if d, ok := rt.resp.(document); ok {
			// OpenAPI 3.1 describes a non-JSON body as a string of its media type.
			content = map[string]any{d.mediaType: map[string]any{"schema": map[string]any{
				"type": "string", "contentMediaType": d.mediaType, "description": d.desc}}}
		} else {
			content = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.resp))}}
		}
		responses := map[string]any{
			fmt.Sprint(rt.ok): map[string]any{"description": http.StatusText(rt.ok), "content": content},
		}
		codes := slices.Concat([]int{401, 403}, rt.problems)
		if rt.body != nil {
			codes = append(codes, http.StatusServiceUnavailable) // the in-flight body budget is full (admission.go)
		}
		if slices.Contains(rt.roles, auth.RoleAdmin) || slices.Contains(rt.roles, auth.RoleCompliance) {
			codes = append(codes, http.StatusTooManyRequests) // limitOverseers
		}
		slices.Sort(codes)
		codes = slices.Compact(codes)
		for _, code := range codes {
			responses[fmt.Sprint(code)] = map[string]any{"description": http.StatusText(code), "content": map[string]any{
				"application/problem+json": map[string]any{"schema": problem}}}
		}
		op["responses"] = responses
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(rt.method)] = op
	}
	text := func(desc string) map[string]any {
		return map[string]any{"get": map[string]any{"summary": desc, "security": []any{}, "responses": map[string]any{
			"200": map[string]any{"description": "OK"}}}}
	}
	paths["/healthz"] = text("Process is up")
	paths["/readyz"] = text("The store is reachable (503 problem otherwise)")
	paths["/metrics"] = map[string]any{"get": map[string]any{
		"summary":     "Prometheus metrics, with every merchant's ε spent and cap",
		"description": "Roles: compliance, admin. The same metrics without the per-merchant series are served without a token on the operator's metrics listener.",
		"security":    []any{map[string]any{"bearer": []string{}}},
		"responses": map[string]any{
			"200": map[string]any{"description": "OK", "content": map[string]any{"text/plain": map[string]any{"schema": map[string]any{
				"type": "string", "contentMediaType": "text/plain", "description": "Prometheus text exposition format"}}}},
			"401": map[string]any{"description": http.StatusText(http.StatusUnauthorized), "content": map[string]any{"application/problem+json": map[string]any{"schema": problem}}},
			"403": map[string]any{"description": http.StatusText(http.StatusForbidden), "content": map[string]any{"application/problem+json": map[string]any{"schema": problem}}},
			"429": map[string]any{"description": http.StatusText(http.StatusTooManyRequests), "content": map[string]any{"application/problem+json": map[string]any{"schema": problem}}},
		}}}
	paths["/.well-known/jwks.json"] = text("Token verification keys (RFC 8037 Ed25519 JWKS)")
	paths["/openapi.json"] = text("This document")

	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Kairos aggregator API",
			"version":     "1",
			"description": "Federated purchase-timing model training with differential privacy. Failures are RFC 7807 problem documents.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": g.defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{
				"type": "http", "scheme": "bearer", "bearerFormat": "JWT (EdDSA, typ kairos+jwt)"}},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return append(b, '\n'), nil
}

// schemaGen turns Go types into JSON Schema, named structs into components.
type schemaGen struct {
	defs map[string]any
}

var (
	typeTime   = reflect.TypeFor[time.Time]()
	typeRawMsg = reflect.TypeFor[json.RawMessage]()
)

// ref registers the struct t as a component and returns its name.
func (g *schemaGen) ref(t reflect.Type) string {
	name := t.Name()
	if name == "problemDoc" {
		name = "Problem"
	}
	name = strings.ToUpper(name[:1]) + name[1:]
	if _, ok := g.defs[name]; ok {
		return name
	}
	g.defs[name] = nil // placeholder against recursion
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required)
	def := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if required != nil {
		def["required"] = required
	}
	g.defs[name] = def
	return name
}

// fields adds t's JSON members to props, promoting the members of untagged
// embedded structs as encoding/json does.
func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			g.fields(f.Type, props, required)
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		jname, opts, _ := strings.Cut(tag, ",")
		if jname == "" {
			jname = f.Name
		}
		sch := g.schema(f.Type)
		if d := f.Tag.Get("doc"); d != "" {
			// OpenAPI 3.1 (JSON Schema 2020-12) allows siblings of $ref.
			sch["description"] = d
		}
		props[jname] = sch
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, jname)
		}
	}
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch t {
	case typeTime:
		return map[string]any{"type": "string", "format": "date-time"}
	case typeRawMsg:
		return map[string]any{"description": "embedded JSON document (a hazard model file)"}
	}
	switch t.Kind() {
	case reflect.Struct:
		return map[string]any{"$ref": "#/components/schemas/" + g.ref(t)}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		// A nil Go slice or map encodes as null.
		return map[string]any{"type": []string{"array", "null"}, "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": []string{"object", "null"}, "additionalProperties": g.schema(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Pointer:
		return g.schema(t.Elem())
	}
	return map[string]any{}
}
