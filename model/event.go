// Package model holds the purchase-timing task's shared vocabulary: the canonical
// event that every reader produces and every feature consumes, and the horizon of
// the prediction. The feature builder, hazard model, baselines and metrics live in
// sub-packages.
package model

import (
	"fmt"
	"time"
)

// Kind is what a customer did in one event.
type Kind uint8

// The event kinds Kairos understands. A reader maps its source's vocabulary onto these.
const (
	View Kind = iota + 1
	Cart
	Favorite
	Purchase
)

var kindNames = [...]string{View: "view", Cart: "cart", Favorite: "favorite", Purchase: "purchase"}

// String returns the canonical lower-case name of k.
func (k Kind) String() string {
	if k >= View && k <= Purchase {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind maps a canonical kind name to its Kind.
func ParseKind(s string) (Kind, error) {
	for k := View; k <= Purchase; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown event kind %q (want view, cart, favorite or purchase)", s)
}

// Event is one customer action. Customer is a pseudonym once the event has passed
// the client's pseudonymizer; Time is in UTC.
type Event struct {
	Customer  string
	Time      time.Time
	Kind      Kind
	Amount    float64 // spend in the shop's currency; meaningful only when HasAmount
	HasAmount bool
	Item      string
	Category  string
}

// Horizon is the number of days the hazard model predicts over. Day k (1-based) of a
// cutoff τ is the half-open interval [τ+(k−1)·24h, τ+k·24h), so the label window is
// [τ, τ+30d) and features use events strictly before τ.
const Horizon = 30

// Day is one calendar day as a duration.
const Day = 24 * time.Hour

// MaxAmount is the largest purchase amount Kairos accepts, in the shop's currency
// (10^12: larger than any real order, small enough that the sum of a customer's
// amounts over any feasible history stays far below the float64 range). Readers
// and the predict API refuse an amount above it, naming the field; the feature
// builder saturates at it, so that a feature is finite whatever reaches it.
const MaxAmount = 1e12
