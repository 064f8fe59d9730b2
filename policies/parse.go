package policies

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxSize bounds the policy file Parse accepts.
const MaxSize = 1 << 20

// maxErrors bounds how many problems one Parse reports.
const maxErrors = 50

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Parse reads and validates the policy in data; file names it in errors.
// Errors are an ErrorList.
func Parse(file string, data []byte) (*Policy, error) {
	if len(data) > MaxSize {
		return nil, ErrorList{{File: file, Line: 1, Msg: fmt.Sprintf("policy is %d bytes, limit %d", len(data), MaxSize)}}
	}
	p := &parser{file: file}
	root := p.document(data)
	if root == nil {
		return nil, p.errs
	}
	pol := p.policy(root)
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		return nil, p.errs
	}
	pol.hash = pol.computeHash()
	return pol, nil
}

type parser struct {
	file string
	errs ErrorList
	seen map[string]bool // deduplicates identical messages
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes data into a node tree and returns the root mapping.
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		p.errs = append(p.errs, &Error{File: p.file, Line: 1, Column: 1, Msg: "empty policy"})
		return nil
	}
	if err != nil {
		e := &Error{File: p.file, Line: 1, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
		}
		p.errs = append(p.errs, e)
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := next.Line
		if line == 0 {
			line = 1
		}
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: next.Column, Msg: "more than one YAML document"})
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "policy must be a mapping, got %s", kindName(root))
		return nil
	}
	return root
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: p.file, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[e.Error()] || len(p.errs) >= maxErrors {
		return
	}
	p.seen[e.Error()] = true
	p.errs = append(p.errs, e)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// pair is one key and value of a mapping.
type pair struct{ key, value *yaml.Node }

// mapping checks that n is a mapping with unique string keys and returns its
// pairs, or nil after reporting why not.
func (p *parser) mapping(n *yaml.Node, what string) []pair {
	if n.Kind == yaml.AliasNode {
		p.errorf(n, "%s: aliases are not supported", what)
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping, got %s", what, kindName(n))
		return nil
	}
	pairs := make([]pair, 0, len(n.Content)/2)
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || !slices.Contains(idTags, k.ShortTag()) {
			p.errorf(k, "%s: keys must be strings, got %s", what, kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(k, "key %q repeated (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		pairs = append(pairs, pair{k, v})
	}
	return pairs
}

func (p *parser) unknown(k *yaml.Node) { p.errorf(k, "unknown key %q", k.Value) }

// scalar checks n is a scalar with one of tags and not an alias.
func (p *parser) scalar(n *yaml.Node, name, want string, tags ...string) bool {
	if n.Kind == yaml.AliasNode {
		p.errorf(n, "%s: aliases are not supported", name)
		return false
	}
	if n.Kind != yaml.ScalarNode || !slices.Contains(tags, n.ShortTag()) {
		p.errorf(n, "%s: want %s, got %s", name, want, kindName(n))
		return false
	}
	return true
}

func (p *parser) float(n *yaml.Node, name string) (float64, bool) {
	if !p.scalar(n, name, "a number", "!!int", "!!float") {
		return 0, false
	}
	var f float64
	if err := n.Decode(&f); err != nil {
		p.errorf(n, "%s: want a number, got %q", name, n.Value)
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		p.errorf(n, "%s: must be finite, got %s", name, n.Value)
		return 0, false
	}
	return f, true
}

func (p *parser) int(n *yaml.Node, name string) (int, bool) {
	if !p.scalar(n, name, "an integer", "!!int") {
		return 0, false
	}
	var i int64
	if err := n.Decode(&i); err != nil || i > math.MaxInt32 || i < math.MinInt32 {
		p.errorf(n, "%s: integer %s out of range", name, n.Value)
		return 0, false
	}
	return int(i), true
}

func (p *parser) str(n *yaml.Node, name string) (string, bool) {
	if !p.scalar(n, name, "a string", "!!str") {
		return "", false
	}
	return n.Value, true
}

// idTags are the tags a plain scalar used as an id may resolve to: ids such
// as 1001 are written without quotes.
var idTags = []string{"!!str", "!!int", "!!float"}

// id reads a name: a merchant, partner, region or federation id. It keeps
// the source text, so 007 stays "007".
func (p *parser) id(n *yaml.Node, name string) (string, bool) {
	if !p.scalar(n, name, "a name", idTags...) {
		return "", false
	}
	s := n.Value
	if !idPattern.MatchString(s) {
		p.errorf(n, "%s: %q is not a valid id (letters, digits, '.', '_', '-'; at most 64; starting with a letter or digit)", name, s)
		return "", false
	}
	return s, true
}

func (p *parser) list(n *yaml.Node, name string) []*yaml.Node {
	if n.Kind == yaml.AliasNode {
		p.errorf(n, "%s: aliases are not supported", name)
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s: want a list, got %s", name, kindName(n))
		return nil
	}
	return n.Content
}

// Levels of the override chain, so that a check spanning two values can
// point at the more specific one.
const (
	levelDefaults = iota
	levelRegion
	levelMerchant
)

// setting is one rule value and where it was written.
type setting[T any] struct {
	v     T
	node  *yaml.Node
	level int
	set   bool
}

// rules are the overridable keys.
type rules struct {
	epsilon, delta, noise, clip setting[float64]
	minCustomers, retention     setting[int]
	maxCustomers                setting[int]      // optional: not in ruleKeys
	features                    setting[[]string] // nil v with set: all features
	written                     map[string]bool   // keys present, valid or not
}

var ruleKeys = []string{
	"epsilon_cap", "delta", "min_noise_multiplier", "clip_norm",
	"min_customers_per_update", "allowed_features", "retention_days",
}

func over[T any](base, o setting[T]) setting[T] {
	if o.set {
		return o
	}
	return base
}

func (r rules) overlay(o rules) rules {
	return rules{
		epsilon:      over(r.epsilon, o.epsilon),
		delta:        over(r.delta, o.delta),
		noise:        over(r.noise, o.noise),
		clip:         over(r.clip, o.clip),
		minCustomers: over(r.minCustomers, o.minCustomers),
		retention:    over(r.retention, o.retention),
		maxCustomers: over(r.maxCustomers, o.maxCustomers),
		features:     over(r.features, o.features),
	}
}

// rule reads one rule key into r; it reports false when k is not a rule key.
func (p *parser) rule(r *rules, level int, k, v *yaml.Node) bool {
	name := k.Value
	if slices.Contains(ruleKeys, name) {
		if r.written == nil {
			r.written = map[string]bool{}
		}
		r.written[name] = true
	}
	fl := func(s *setting[float64], ok func(float64) bool, want string) {
		if f, good := p.float(v, name); good {
			if !ok(f) {
				p.errorf(v, "%s: must be %s, got %s", name, want, v.Value)
				return
			}
			*s = setting[float64]{v: f, node: v, level: level, set: true}
		}
	}
	in := func(s *setting[int]) {
		if i, good := p.int(v, name); good {
			if i < 1 {
				p.errorf(v, "%s: must be at least 1, got %s", name, v.Value)
				return
			}
			*s = setting[int]{v: i, node: v, level: level, set: true}
		}
	}
	switch name {
	case "epsilon_cap":
		fl(&r.epsilon, func(f float64) bool { return f > 0 }, "> 0")
	case "delta":
		fl(&r.delta, func(f float64) bool { return f > 0 && f <= MaxDelta }, fmt.Sprintf("in (0, %g]", MaxDelta))
	case "min_noise_multiplier":
		fl(&r.noise, func(f float64) bool { return f >= 0 && f <= MaxNoiseMultiplier }, fmt.Sprintf("in [0, %g]", MaxNoiseMultiplier))
	case "clip_norm":
		fl(&r.clip, func(f float64) bool { return f > 0 && f <= MaxClipNorm }, fmt.Sprintf("in (0, %g]", MaxClipNorm))
	case "min_customers_per_update":
		in(&r.minCustomers)
	case "retention_days":
		in(&r.retention)
	case "max_customers":
		in(&r.maxCustomers)
	case "allowed_features":
		if f, ok := p.features(v); ok {
			r.features = setting[[]string]{v: f, node: v, level: level, set: true}
		}
	default:
		return false
	}
	return true
}

var featurePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

func (p *parser) features(n *yaml.Node) ([]string, bool) {
	items := p.list(n, "allowed_features")
	if items == nil {
		if n.Kind == yaml.SequenceNode {
			p.errorf(n, "allowed_features: empty; write [all] to allow every feature")
		}
		return nil, false
	}
	var names []string
	all, ok := false, true
	for _, it := range items {
		s, good := p.str(it, "allowed_features")
		switch {
		case !good:
			ok = false
		case s == AllFeatures:
			all = true
		case !featurePattern.MatchString(s):
			p.errorf(it, "allowed_features: %q is not a feature name (lower case, digits, '_')", s)
			ok = false
		case slices.Contains(names, s):
			p.errorf(it, "allowed_features: %q repeated", s)
			ok = false
		default:
			names = append(names, s)
		}
	}
	if all && (len(items) > 1) {
		p.errorf(n, "allowed_features: %q must stand alone", AllFeatures)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	if all {
		return nil, true
	}
	slices.Sort(names)
	return names, true
}

// rulesBlock reads a mapping of rule keys (plus the extra keys handled by
// extra, which reports whether it knew the key).
func (p *parser) rulesBlock(n *yaml.Node, what string, level int, extra func(k, v *yaml.Node) bool) rules {
	var r rules
	for _, kv := range p.mapping(n, what) {
		if extra != nil && extra(kv.key, kv.value) {
			continue
		}
		if !p.rule(&r, level, kv.key, kv.value) {
			p.unknown(kv.key)
		}
	}
	return r
}

// checkComplete reports rule keys missing from the defaults. A key written
// with a bad value was reported where it stands.
func (p *parser) checkComplete(r rules, at *yaml.Node) {
	for _, k := range ruleKeys {
		if !r.written[k] {
			p.errorf(at, "defaults: missing %q", k)
		}
	}
}

// checkCross checks δ < 1/min_customers_per_update on effective rules:
// with fewer than 1/δ customers, δ no longer bounds the chance that one
// customer's data is exposed outright. The error points at whichever of the
// two values was written at the more specific level.
func (p *parser) checkCross(r rules) {
	if r.maxCustomers.set && r.minCustomers.set && r.maxCustomers.v < r.minCustomers.v {
		at := r.maxCustomers.node
		if r.minCustomers.level > r.maxCustomers.level {
			at = r.minCustomers.node
		}
		p.errorf(at, "max_customers %d is below min_customers_per_update %d", r.maxCustomers.v, r.minCustomers.v)
	}
	if !r.delta.set || !r.minCustomers.set {
		return
	}
	d, n := r.delta.v, r.minCustomers.v
	if d*float64(n) < 1 {
		return
	}
	at := r.delta.node
	if r.minCustomers.level > r.delta.level {
		at = r.minCustomers.node
	}
	p.errorf(at, "delta %s must be below 1/min_customers_per_update = 1/%d", r.delta.node.Value, n)
}

func (r rules) effective(id, region string) MerchantPolicy {
	return MerchantPolicy{
		ID:                    id,
		Region:                region,
		EpsilonCap:            r.epsilon.v,
		Delta:                 r.delta.v,
		MinNoiseMultiplier:    r.noise.v,
		ClipNorm:              r.clip.v,
		MinCustomersPerUpdate: r.minCustomers.v,
		AllFeatures:           r.features.set && r.features.v == nil,
		Features:              slices.Clone(r.features.v),
		RetentionDays:         r.retention.v,
		MaxCustomers:          r.maxCustomers.v,
	}
}

type merchantEntry struct {
	key    *yaml.Node
	region string
	regKey *yaml.Node
	rules  rules
}

type partnerEntry struct {
	key       *yaml.Node
	merchants []*yaml.Node
	rate      float64
	burst     int
}

// policy reads the root mapping.
func (p *parser) policy(root *yaml.Node) *Policy {
	pol := &Policy{
		aggregation: Aggregation{Merge: MergeFedAvg},
		merchants:   map[string]MerchantPolicy{},
		partners:    map[string]PartnerPolicy{},
	}
	var (
		defaults    rules
		defaultsKey *yaml.Node
		regions     = map[string]rules{}
		merchants   = map[string]merchantEntry{}
		partners    = map[string]partnerEntry{}
		have        = map[string]bool{}
	)
	for _, kv := range p.mapping(root, "policy") {
		k, v := kv.key, kv.value
		have[k.Value] = true
		switch k.Value {
		case "version":
			if n, ok := p.int(v, "version"); ok {
				if n != 1 {
					p.errorf(v, "version: only version 1 is supported, got %d", n)
				}
				pol.version = n
			}
		case "federation":
			pol.federation, _ = p.id(v, "federation")
		case "defaults":
			defaultsKey = k
			defaults = p.rulesBlock(v, "defaults", levelDefaults, nil)
		case "aggregation":
			pol.aggregation = p.aggregationBlock(v)
		case "regions":
			for _, r := range p.mapping(v, "regions") {
				name, ok := p.id(r.key, "region")
				rs := p.rulesBlock(r.value, "region "+r.key.Value, levelRegion, nil)
				if ok {
					regions[name] = rs
				}
			}
		case "merchants":
			for _, m := range p.mapping(v, "merchants") {
				id, ok := p.id(m.key, "merchant")
				e := merchantEntry{key: m.key}
				e.rules = p.rulesBlock(m.value, "merchant "+m.key.Value, levelMerchant, func(k, v *yaml.Node) bool {
					if k.Value != "region" {
						return false
					}
					e.region, _ = p.id(v, "region")
					e.regKey = v
					return true
				})
				if ok {
					merchants[id] = e
				}
			}
		case "partners":
			for _, q := range p.mapping(v, "partners") {
				id, ok := p.id(q.key, "partner")
				e := p.partnerBlock(q.key, q.value)
				if ok {
					partners[id] = e
				}
			}
		case "tokens":
			pol.tokenTTL = p.tokensBlock(v)
		case "retraining":
			pol.retraining = p.retrainingBlock(v)
		default:
			p.unknown(k)
		}
	}
	for _, req := range []string{"version", "federation", "defaults"} {
		if !have[req] {
			p.errorf(root, "missing key %q", req)
		}
	}
	if defaultsKey != nil {
		p.checkComplete(defaults, defaultsKey)
	}
	p.checkCross(defaults)

	used := map[string]bool{}
	for _, name := range sortedKeys(regions) {
		p.checkCross(defaults.overlay(regions[name]))
	}
	for _, id := range sortedKeys(merchants) {
		e := merchants[id]
		eff := defaults
		if e.region != "" {
			rs, ok := regions[e.region]
			if !ok {
				p.errorf(e.regKey, "region %q is not defined under regions", e.region)
			}
			used[e.region] = true
			eff = eff.overlay(rs)
		}
		eff = eff.overlay(e.rules)
		p.checkCross(eff)
		pol.merchants[id] = eff.effective(id, e.region)
	}
	for _, id := range sortedKeys(partners) {
		e := partners[id]
		q := PartnerPolicy{ID: id, RatePerSecond: e.rate, Burst: e.burst}
		for _, n := range e.merchants {
			if _, ok := merchants[n.Value]; !ok {
				p.errorf(n, "partner %s: merchant %q is not defined under merchants", id, n.Value)
			}
			q.Merchants = append(q.Merchants, n.Value)
		}
		slices.Sort(q.Merchants)
		pol.partners[id] = q
	}
	pol.defaults = defaults.effective("", "")
	pol.regions = sortedKeys(used)
	return pol
}

func (p *parser) aggregationBlock(n *yaml.Node) Aggregation {
	a := Aggregation{Merge: MergeFedAvg}
	var mergeNode, trimNode *yaml.Node
	for _, kv := range p.mapping(n, "aggregation") {
		switch kv.key.Value {
		case "merge":
			s, ok := p.str(kv.value, "merge")
			if !ok {
				continue
			}
			switch m := Merge(s); m {
			case MergeFedAvg, MergeMedian, MergeTrimmedMean:
				a.Merge, mergeNode = m, kv.value
			default:
				p.errorf(kv.value, "merge: %q is not one of fedavg, median, trimmed_mean", s)
			}
		case "trim_fraction":
			if f, ok := p.float(kv.value, "trim_fraction"); ok {
				if f <= 0 || f >= 0.5 {
					p.errorf(kv.value, "trim_fraction: must be in (0, 0.5), got %s", kv.value.Value)
				}
				a.TrimFraction, trimNode = f, kv.value
			}
		case "norm_bound":
			if f, ok := p.float(kv.value, "norm_bound"); ok {
				if f <= 0 {
					p.errorf(kv.value, "norm_bound: must be > 0, got %s", kv.value.Value)
				}
				a.NormBound = f
			}
		case "max_weight_share":
			if f, ok := p.float(kv.value, "max_weight_share"); ok {
				if f <= 0 || f > 1 {
					p.errorf(kv.value, "max_weight_share: must be in (0, 1], got %s", kv.value.Value)
				}
				a.MaxWeightShare = f
			}
		case "min_cohort":
			if n, ok := p.int(kv.value, "min_cohort"); ok {
				if n < 2 {
					p.errorf(kv.value, "min_cohort: must be at least 2 (one merchant's noise alone is plain mode), got %s", kv.value.Value)
				}
				a.MinCohort = n
			}
		default:
			p.unknown(kv.key)
		}
	}
	switch {
	case a.Merge == MergeTrimmedMean && trimNode == nil && mergeNode != nil:
		p.errorf(mergeNode, "merge: trimmed_mean needs trim_fraction")
	case a.Merge != MergeTrimmedMean && trimNode != nil:
		p.errorf(trimNode, "trim_fraction: only meaningful with merge: trimmed_mean")
	}
	return a
}

func (p *parser) partnerBlock(key, n *yaml.Node) partnerEntry {
	e := partnerEntry{key: key}
	var haveMerchants, haveRate, haveBurst bool
	for _, kv := range p.mapping(n, "partner "+key.Value) {
		v := kv.value
		switch kv.key.Value {
		case "merchants":
			haveMerchants = true
			items := p.list(v, "merchants")
			if items == nil && v.Kind == yaml.SequenceNode {
				p.errorf(v, "merchants: empty; a partner needs at least one merchant")
			}
			seen := map[string]bool{}
			for _, it := range items {
				id, ok := p.id(it, "merchants")
				if !ok {
					continue
				}
				if seen[id] {
					p.errorf(it, "merchants: %q repeated", id)
					continue
				}
				seen[id] = true
				e.merchants = append(e.merchants, it)
			}
		case "rate_per_second":
			haveRate = true
			if f, ok := p.float(v, "rate_per_second"); ok {
				if f <= 0 {
					p.errorf(v, "rate_per_second: must be > 0, got %s", v.Value)
				}
				e.rate = f
			}
		case "burst":
			haveBurst = true
			if b, ok := p.int(v, "burst"); ok {
				if b < 1 {
					p.errorf(v, "burst: must be at least 1, got %s", v.Value)
				}
				e.burst = b
			}
		default:
			p.unknown(kv.key)
		}
	}
	if n.Kind == yaml.MappingNode {
		for i, ok := range []bool{haveMerchants, haveRate, haveBurst} {
			if !ok {
				p.errorf(key, "partner %s: missing %q", key.Value, []string{"merchants", "rate_per_second", "burst"}[i])
			}
		}
	}
	return e
}
