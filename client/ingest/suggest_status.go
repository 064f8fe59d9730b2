package ingest

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kairos-fl/kairos/model"
)

// statusWords classify the values of an order status or event column.
var (
	purchaseWords = []string{"paid", "complete", "completed", "succeeded", "success", "successful", "processing", "delivered", "shipped",
		"fulfilled", "payment", "sale", "sold", "buy", "purchase", "purchased", "order", "ordered", "partially refunded", "partially paid",
		"livré", "livre", "paiement accepté", "expédié", "bezahlt", "abgeschlossen", "geliefert", "versendet", "versandt", "pagado",
		"completado", "entregado", "enviado", "approved", "captured", "settled", "charge", "charged", "closed won"}
	ignoreWords = []string{"cancelled", "canceled", "cancel", "refunded", "refund", "voided", "void", "failed", "fail", "pending",
		"on hold", "awaiting", "declined", "rejected", "returned", "return", "expired", "abandoned", "closed", "draft", "annulé", "annule",
		"remboursé", "rembourse", "en attente", "storniert", "erstattet", "ausstehend", "cancelado", "reembolsado", "pendiente",
		"chargeback", "disputed", "unpaid", "authorized", "trash", "checkout draft"}
	viewWords     = []string{"pv", "view", "page view", "pageview", "click", "detail"}
	cartWords     = []string{"cart", "add to cart", "addtocart", "basket"}
	favoriteWords = []string{"fav", "favorite", "favourite", "wishlist", "like"}
)

// normStatus lower-cases a status value and drops WooCommerce's "wc-".
func normStatus(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	v = strings.TrimPrefix(v, "wc-")
	return strings.NewReplacer("_", " ", "-", " ").Replace(v)
}

// classifyStatus returns the kind a status value names, or ignore for a
// value that is not an event (a cancelled or unpaid order), or neither.
func classifyStatus(v string) (k model.Kind, ignore, known bool) {
	n := normStatus(v)
	if n == "" {
		return 0, true, true
	}
	in := func(ws []string) bool {
		for _, w := range ws {
			if n == w || strings.HasPrefix(n, w+" ") {
				return true
			}
		}
		return false
	}
	switch {
	case in(purchaseWords):
		return model.Purchase, false, true
	case in(ignoreWords):
		return 0, true, true
	case in(viewWords):
		return model.View, false, true
	case in(cartWords):
		return model.Cart, false, true
	case in(favoriteWords):
		return model.Favorite, false, true
	}
	return 0, false, false
}

// statusValues are the distinct values of a column, in order of first
// appearance, with their row counts; ok is false past max values.
func (s *sample) statusValues(c, maxValues int) (vals []string, count map[string]int, ok bool) {
	count = map[string]int{}
	for _, r := range s.rows {
		if c >= len(r) {
			continue
		}
		v := r[c]
		if _, seen := count[v]; !seen {
			if len(vals) == maxValues {
				return nil, nil, false
			}
			vals = append(vals, v)
		}
		count[v]++
	}
	return vals, count, true
}

// decideStatus finds a status or event column: few distinct values, named
// so or made of known status words, one of them at least a purchase.
func (p *plan) decideStatus() {
	best, bestScore := -1, 0
	var bestVals []string
	var bestCount map[string]int
	for c := range p.ncols {
		if p.used[c] != "" || p.info[c].cancelled {
			continue
		}
		vals, count, ok := p.s.statusValues(c, 30)
		if !ok {
			continue
		}
		purchases, known, nonEmpty := 0, 0, 0
		for _, v := range vals {
			if strings.TrimSpace(v) == "" {
				continue
			}
			nonEmpty++
			if looksNumeric(v) {
				nonEmpty = -1000
				break
			}
			k, _, ok := classifyStatus(v)
			if ok {
				known++
			}
			if k != 0 {
				purchases++
			}
		}
		if purchases == 0 || nonEmpty <= 0 {
			continue
		}
		score := 0
		switch {
		case p.info[c].status > 0:
			score = 10*p.info[c].status + known
		case known == nonEmpty && len(count) > 0:
			score = known
		}
		if score > bestScore {
			best, bestScore, bestVals, bestCount = c, score, vals, count
		}
	}
	if best < 0 {
		e := entry{why: []string{"kind: no column holds an order status or event type (named so, with values like paid or cancelled): every row is a purchase"},
			lines: []string{"kind: {constant: purchase}"}}
		for c := range p.ncols {
			if p.used[c] == "" && p.info[c].status == 2 {
				vals, count, _ := p.s.statusValues(c, 30)
				e.check = fmt.Sprintf("%s is named like a status, but none of its values (%s) is a known purchase status: every row is taken as a purchase; map its values under kind if some rows are not purchases", p.info[c].label, countList(vals, count))
				break
			}
		}
		p.add(e)
		return
	}
	p.status = best
	p.used[best] = "kind"
	var mapped, ignored, unknown []string
	kinds := map[string]model.Kind{}
	for _, v := range bestVals {
		k, ign, ok := classifyStatus(v)
		switch {
		case !ok:
			unknown = append(unknown, v)
			ignored = append(ignored, v)
		case ign:
			ignored = append(ignored, v)
		default:
			mapped = append(mapped, v)
			kinds[v] = k
		}
	}
	sort.Strings(mapped)
	sort.Strings(ignored)
	pairs := make([]string, len(mapped))
	for i, v := range mapped {
		pairs[i] = yamlString(v) + ": " + kinds[v].String()
	}
	quoted := make([]string, len(ignored))
	for i, v := range ignored {
		quoted[i] = yamlString(v)
	}
	why := []string{fmt.Sprintf("kind: %s holds %s: %s", p.info[best].label, plural(len(bestVals), "distinct value"), countList(bestVals, bestCount))}
	if bestCount[""] > 0 {
		why = append(why, fmt.Sprintf("an empty %s on %d sampled rows (further lines of an order, as Shopify writes them): ignored before their other fields are read", p.info[best].label, bestCount[""]))
	}
	var check string
	if len(unknown) > 0 {
		q := make([]string, len(unknown))
		for i, v := range unknown {
			q[i] = fmt.Sprintf("%q", v)
		}
		check = fmt.Sprintf("status values %s are neither a known purchase nor a known non-purchase: guessed as ignored (move them under values as purchase if they are paid orders)", strings.Join(q, ", "))
	}
	lines := []string{"kind:", "  column: " + p.ref(best), "  values: {" + strings.Join(pairs, ", ") + "}"}
	if len(quoted) > 0 {
		lines = append(lines, "  ignore: ["+strings.Join(quoted, ", ")+"]")
	}
	p.add(entry{why: why, check: check, lines: lines})
}

// countList writes values with their row counts, most rows first.
func countList(vals []string, count map[string]int) string {
	vs := append([]string(nil), vals...)
	sort.SliceStable(vs, func(i, j int) bool { return count[vs[i]] > count[vs[j]] })
	parts := make([]string, 0, len(vs))
	for _, v := range vs[:min(len(vs), 12)] {
		parts = append(parts, fmt.Sprintf("%q %d", v, count[v]))
	}
	if len(vs) > 12 {
		parts = append(parts, "…")
	}
	return strings.Join(parts, ", ")
}

// decideCancelled finds a column marking cancelled orders by a value
// ("Cancelled at", a boolean "refunded").
func (p *plan) decideCancelled() {
	for c := range p.ncols {
		if p.used[c] != "" || !p.info[c].cancelled {
			continue
		}
		vals, total := p.s.nonEmpty(c)
		n := 0
		for _, v := range vals {
			if isCancelled([]byte(v)) {
				n++
			}
		}
		p.used[c] = "cancelled"
		p.add(entry{why: []string{fmt.Sprintf("cancelled: %s marks %d of %d sampled rows as cancelled (any value but empty, false, no or 0): they are dropped and counted", p.info[c].label, n, total)},
			lines: []string{"cancelled: " + p.ref(c)}})
		return
	}
}

// decideCurrency finds a currency column: more than one currency needs
// rates, which the file does not hold.
func (p *plan) decideCurrency() {
	if p.amount < 0 {
		return
	}
	for c := range p.ncols {
		if p.used[c] != "" || !p.info[c].currency {
			continue
		}
		vals, counts, ok := p.s.statusValues(c, 50)
		if !ok {
			continue
		}
		var codes []string
		for _, v := range vals {
			if v = strings.TrimSpace(v); v != "" {
				codes = append(codes, v)
			}
		}
		delete(counts, "")
		vals = codes
		if len(codes) <= 1 {
			if len(codes) == 1 {
				p.add(entry{why: []string{fmt.Sprintf("currency: %s holds one currency, %s, in the sample: no conversion needed", p.info[c].label, codes[0])}})
			}
			return
		}
		p.used[c] = "currency"
		rates := make([]string, len(codes))
		for i, v := range codes {
			rates[i] = yamlString(v) + ": 1"
		}
		check := fmt.Sprintf("%s holds %s (%s): the rates written are placeholders (1); set each currency's rate into one currency", p.info[c].label, plural(len(codes), "currency"), countList(vals, counts))
		if p.allWhole(p.amount) {
			check += "; every sampled amount is a whole number: if they are in minor units (cents, as Stripe writes them), add amount_unit: minor"
		}
		p.add(entry{why: []string{"currency: amounts in different currencies cannot be added"}, check: check,
			lines: []string{"currency: {column: " + p.ref(c) + ", rates: {" + strings.Join(rates, ", ") + "}}"}})
		return
	}
}

// allWhole reports whether every value of column c is a whole number.
func (p *plan) allWhole(c int) bool {
	vals, _ := p.s.nonEmpty(c)
	for _, v := range vals {
		if !allDigits([]byte(strings.TrimPrefix(v, "-"))) {
			return false
		}
	}
	return len(vals) > 0
}

// plural writes n things, in the plural when n is not 1 ("currency" takes
// "currencies").
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	if strings.HasSuffix(thing, "y") {
		return groupDigits(int64(n)) + " " + strings.TrimSuffix(thing, "y") + "ies"
	}
	return groupDigits(int64(n)) + " " + thing + "s"
}
