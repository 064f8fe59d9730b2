package feature

import (
	"fmt"
	"strconv"
)

// Concentration says how the purchases a Builder holds spread over its
// customers: what a new user's mapping gets wrong shows here first. A column
// that names an order rather than a customer (a per-order customer id, as
// some shop exports have beside the real one) leaves no customer with a
// second purchase; a placeholder id for guests or a shared till account
// gathers a large share of every purchase under one customer.
type Concentration struct {
	// Customers counts the customers with at least one purchase, Purchases
	// their purchase events.
	Customers, Purchases int
	// Repeaters counts the customers with purchases at two or more distinct
	// instants (the lines of one order share an instant and count once).
	Repeaters int
	// Top is the customer with the most purchase events (the smallest id on a
	// tie) and TopPurchases its count.
	Top          string
	TopPurchases int
}

// Dominance thresholds: one customer dominates when it holds at least
// DominantShare of all purchase events and DominantRatio times the mean of
// every other customer. On the shared data sets the largest customer holds
// 0.25 % (CDNOW), 1.1 % (Online Retail, a wholesaler's best client; 50× the
// mean of the others) and 1.1 % (grocery, 17×): far below both bars.
const (
	DominantShare = 0.05
	DominantRatio = 100
)

// PurchaseConcentration returns the spread of the purchases added so far.
func (b *Builder) PurchaseConcentration() Concentration {
	var c Concentration
	for id, cu := range b.customers {
		n := len(cu.purchases)
		if n == 0 {
			continue
		}
		c.Customers++
		c.Purchases += n
		for _, p := range cu.purchases[1:] {
			if p.at != cu.purchases[0].at {
				c.Repeaters++
				break
			}
		}
		if n > c.TopPurchases || (n == c.TopPurchases && id < c.Top) {
			c.Top, c.TopPurchases = id, n
		}
	}
	return c
}

// Dominant reports whether the top customer dominates the log (see
// DominantShare and DominantRatio).
func (c Concentration) Dominant() bool {
	if c.Purchases == 0 || c.Customers < 2 {
		return false
	}
	others := float64(c.Purchases-c.TopPurchases) / float64(c.Customers-1)
	return float64(c.TopPurchases) >= DominantShare*float64(c.Purchases) &&
		float64(c.TopPurchases) >= DominantRatio*others
}

// Warning is a sentence for the user when the top customer dominates, else "".
func (c Concentration) Warning() string {
	if !c.Dominant() {
		return ""
	}
	return fmt.Sprintf("customer %s holds %d of the %d purchases (%.1f%%): if it is a placeholder for guests or a shared account, "+
		"list it under missing_customer_values in the mapping (with missing_customer: ignore) so that its rows are dropped; one customer this large weighs on every model fitted to the log",
		quoteID(c.Top), c.TopPurchases, c.Purchases, 100*float64(c.TopPurchases)/float64(c.Purchases))
}

// NoRepeatHint explains a log in which no customer buys twice, else "".
func (c Concentration) NoRepeatHint() string {
	if c.Customers == 0 || c.Repeaters > 0 {
		return ""
	}
	return fmt.Sprintf("none of the %d customers has purchases at two different times, so there is no next purchase to learn or predict: "+
		"check that the customer column names the customer and not the order (some exports give every order a customer id of its own beside the id that stays the same across orders)",
		c.Customers)
}

// quoteID quotes a customer id for a message, cut to 64 bytes.
func quoteID(id string) string {
	const maxBytes = 64
	if len(id) <= maxBytes {
		return strconv.Quote(id)
	}
	cut := maxBytes
	for cut > 0 && id[cut]&0xC0 == 0x80 {
		cut--
	}
	return strconv.Quote(id[:cut]) + "…"
}
