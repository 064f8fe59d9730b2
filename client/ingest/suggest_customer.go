package ingest

import (
	"fmt"
	"slices"
	"strings"
)

// guestIDs are customer ids shop systems write for an order without a
// customer (WooCommerce's 0, "Guest"), compared in lower case.
var guestIDs = []string{"0", "guest", "gast", "invitado", "invité", "anonymous", "anonym", "-", "guest checkout"}

// custStats describes a candidate customer column.
type custStats struct {
	col                      int
	distinct, filled, total  int
	missing, guests          int
	guestValues              []string
	trim, integer, email     bool
	upper, plusTag, fraction bool
	key                      func(string) string // the id as the reader will see it
}

// customerStats profiles column c as customer ids.
func (s *sample) customerStats(c int) custStats {
	st := custStats{col: c}
	for _, r := range s.rows {
		if c >= len(r) {
			continue
		}
		st.total++
		v := r[c]
		t := strings.TrimSpace(v)
		if t != v {
			st.trim = true
		}
		switch {
		case t == "" || isMissingMarker([]byte(t)):
			st.missing++
			continue
		case floatInteger([]byte(t)) > 0:
			st.integer = true
		case strings.ContainsAny(t, ".,") && looksNumeric(t):
			st.fraction = true
		}
		if strings.Contains(t, "@") {
			st.email = true
			if strings.ToLower(t) != t {
				st.upper = true
			}
			if at := strings.LastIndexByte(t, '@'); strings.Contains(t[:at], "+") {
				st.plusTag = true
			}
		}
	}
	st.key = func(v string) string {
		t := strings.TrimSpace(v)
		if n := floatInteger([]byte(t)); n > 0 {
			t = t[:n]
		}
		if st.email {
			t = strings.ToLower(t)
			if st.plusTag {
				t = string(dropPlusTag(nil, []byte(t)))
			}
		}
		return t
	}
	seen := map[string]bool{}
	for _, r := range s.rows {
		if c >= len(r) {
			continue
		}
		t := strings.TrimSpace(r[c])
		if t == "" || isMissingMarker([]byte(t)) {
			continue
		}
		k := st.key(r[c])
		if slices.Contains(guestIDs, strings.ToLower(k)) {
			st.guests++
			if !slices.Contains(st.guestValues, k) {
				st.guestValues = append(st.guestValues, k)
			}
			continue
		}
		st.filled++
		seen[k] = true
	}
	st.distinct = len(seen)
	return st
}

// plausible reports whether the column can hold customer ids: filled, not
// amounts or times, neither one value nor a handful of categories.
func (st custStats) plausible() bool {
	if st.fraction || st.distinct < 2 || st.filled*2 < st.total {
		return false
	}
	return st.distinct >= 10 || st.filled < 50
}

// equivalent reports whether columns a and b name the same customers: each
// id of one goes with one id of the other in every sampled row.
func (s *sample) equivalent(a, b custStats) bool {
	ab, ba := map[string]string{}, map[string]string{}
	for _, r := range s.rows {
		if a.col >= len(r) || b.col >= len(r) {
			continue
		}
		x, y := a.key(r[a.col]), b.key(r[b.col])
		if v, ok := ab[x]; ok && v != y {
			return false
		}
		if v, ok := ba[y]; ok && v != x {
			return false
		}
		ab[x], ba[y] = y, x
	}
	return true
}

// decideCustomer picks the customer column: a name that says customer,
// confirmed by ids that repeat across rows.
func (p *plan) decideCustomer() {
	var cands []custStats
	for c := range p.ncols {
		if p.used[c] != "" || p.info[c].qty || p.info[c].amount > 0 || p.info[c].order || p.info[c].currency {
			continue
		}
		if vals, _ := p.s.nonEmpty(c); len(vals) > 0 && looksDate(vals[0]) {
			continue
		}
		st := p.s.customerStats(c)
		if st.plausible() {
			cands = append(cands, st)
		}
	}
	repeats := func(st custStats) bool { return st.distinct < st.filled }
	score := func(st custStats) int {
		n := 10 * p.info[st.col].customer
		if repeats(st) {
			n += 5
		}
		return n
	}
	slices.SortStableFunc(cands, func(a, b custStats) int { return score(b) - score(a) })
	if len(cands) == 0 {
		c := 0
		for c < p.ncols-1 && p.used[c] != "" {
			c++
		}
		p.cust, p.custKey = c, strings.TrimSpace
		p.add(entry{why: []string{"customer: no column holds ids that repeat across rows"},
			check: fmt.Sprintf("no customer column found: guessed %s", p.info[c].label), lines: []string{"customer: " + p.ref(c)}})
		return
	}
	st := cands[0]
	in := p.info[st.col]
	var check string
	switch {
	case in.customer == 0 && p.s.header:
		check = fmt.Sprintf("no column is named like a customer (customer, client, kunde, cliente, user, buyer, email); guessed %s, whose values repeat", in.label)
	case in.customer == 0:
		check = fmt.Sprintf("the file has no header: guessed %s, the first column whose values repeat across rows", in.label)
		for _, o := range cands[1:] {
			if repeats(o) && !p.s.equivalent(st, o) {
				check += fmt.Sprintf(" (%s repeats too)", p.info[o.col].label)
				break
			}
		}
	case in.customer == 1:
		check = fmt.Sprintf("%s names the customer only by a name or another attribute, not an id: two customers may share it", in.label)
	case !repeats(st):
		check = fmt.Sprintf("no value of %s repeats in the %d sampled rows: it may name the order, not the customer", in.label, st.total)
	}
	if check == "" && len(cands) > 1 {
		o := cands[1]
		if score(o) == score(st) && !p.s.equivalent(st, o) {
			check = fmt.Sprintf("two candidate customer columns: %s and %s, equally named and both repeating, and they do not name the same customers; guessed the first", in.label, p.info[o.col].label)
		}
	}
	p.cust, p.custKey = st.col, st.key
	p.used[st.col] = "customer"
	why := []string{fmt.Sprintf("customer: %s — %s distinct values in %s sampled rows, %.1f rows per value; %.1f%% empty",
		in.label, groupDigits(int64(st.distinct)), groupDigits(int64(st.total)), float64(st.filled)/float64(max(st.distinct, 1)), 100*float64(st.missing)/float64(max(st.total, 1)))}
	lines := []string{"customer: " + p.ref(st.col)}
	var rules []string
	if st.trim {
		rules = append(rules, "trim")
		why = append(why, "customer_normalize trim: some ids have blanks around them")
	}
	if st.integer {
		rules = append(rules, "integer")
		why = append(why, "customer_normalize integer: some ids are integers written as floats (17850.0)")
	}
	if st.email {
		rules = append(rules, "lower")
		why = append(why, "customer_normalize lower: the ids are e-mail addresses, whose case does not name another customer")
	}
	if st.plusTag {
		rules = append(rules, "plus_tag")
		why = append(why, "customer_normalize plus_tag: some addresses carry a +tag (anna+shop@example.com is anna@example.com)")
	}
	if len(rules) > 0 {
		lines = append(lines, "customer_normalize: ["+strings.Join(rules, ", ")+"]")
	}
	if st.guests > 0 {
		q := make([]string, len(st.guestValues))
		for i, v := range st.guestValues {
			q[i] = yamlString(v)
		}
		why = append(why, fmt.Sprintf("missing_customer_values: the guest id %s on %s", strings.Join(q, ", "), plural(st.guests, "sampled row")))
		lines = append(lines, "missing_customer_values: ["+strings.Join(q, ", ")+"]")
	}
	if st.missing+st.guests > 0 {
		why = append(why, fmt.Sprintf("missing_customer: %s of %s sampled rows have no customer (guest checkouts): they are dropped and counted", groupDigits(int64(st.missing+st.guests)), groupDigits(int64(st.total))))
		lines = append(lines, "missing_customer: ignore")
	}
	p.add(entry{why: why, check: check, lines: lines})
}

// decideOrder finds an order id whose lines repeat the order's total: then
// the first line of each order is its one purchase. Lines with amounts of
// their own (a unit price times a quantity) stay one event each.
func (p *plan) decideOrder() {
	if p.amount < 0 || p.qty >= 0 || p.info[p.amount].price {
		// Without an amount nothing tells an order's total from its lines';
		// a price is each line's own.
		return
	}
	for c := range p.ncols {
		if p.used[c] != "" || !p.info[c].order {
			continue
		}
		amount := map[string]string{}
		cust := map[string]string{}
		lines := map[string]int{}
		same, differ := 0, 0
		for _, r := range p.s.rows {
			if c >= len(r) || p.amount >= len(r) || p.cust >= len(r) || p.cust < 0 {
				continue
			}
			id := strings.TrimSpace(r[c])
			if id == "" {
				continue
			}
			lines[id]++
			if a, ok := amount[id]; ok {
				if a == r[p.amount] && cust[id] == p.custKey(r[p.cust]) {
					same++
				} else {
					differ++
				}
				continue
			}
			amount[id], cust[id] = r[p.amount], p.custKey(r[p.cust])
		}
		in := p.info[c]
		if same+differ == 0 {
			p.add(entry{why: []string{fmt.Sprintf("order: %s is an order id, and no order has two lines in the sample: each row is one order", in.label)}})
			return
		}
		if differ*100 > same+differ {
			e := entry{why: []string{fmt.Sprintf("order: %s repeats, but its lines hold amounts of their own: each line is an event", in.label)}}
			if a := strings.ToLower(p.info[p.amount].label); strings.Contains(a, "order") || strings.Contains(a, "grand") || strings.Contains(a, "invoice") {
				e.check = fmt.Sprintf("%s is named like an order's total, but it differs between lines of one order in %s; each line is read as a purchase (add order: %s if the lines repeat one order)", p.info[p.amount].label, in.label, p.ref(c))
			}
			p.add(e)
			return
		}
		p.used[c] = "order"
		p.add(entry{why: []string{fmt.Sprintf("order: %s — %d orders have %d further lines repeating the order's customer and %s: one purchase per order", in.label, countMulti(lines), same, p.info[p.amount].label)},
			lines: []string{"order: " + p.ref(c)}})
		return
	}
}

// countMulti counts the ids with more than one line.
func countMulti(lines map[string]int) int {
	n := 0
	for _, k := range lines {
		if k > 1 {
			n++
		}
	}
	return n
}
