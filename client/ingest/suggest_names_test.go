package ingest

import "testing"

// TestReadName: what a header name proposes, in the languages exports are
// written in; each expected role written by hand.
func TestReadName(t *testing.T) {
	type role struct{ customer, time, amount, qty, order, status, cancelled, relative bool }
	tests := []struct {
		name string
		want role
	}{
		{"Customer ID", role{customer: true}},
		{"customer_id", role{customer: true}},
		{"CustomerID", role{customer: true}},
		{"Kundennummer", role{customer: true}},
		{"ID client", role{customer: true}},
		{"cliente", role{customer: true}},
		{"user_id", role{customer: true}},
		{"buyer", role{customer: true}},
		{"Billing Email", role{customer: true}},
		{"InvoiceDate", role{time: true}},
		{"ordered_at", role{time: true}},
		{"created_at", role{time: true}},
		{"Bestelldatum", role{time: true}},
		{"fecha", role{time: true}},
		{"Paid at", role{time: true}},
		{"Erstellt am", role{time: true}},
		{"amount", role{amount: true}},
		{"Order Total", role{amount: true}},
		{"UnitPrice", role{amount: true}},
		{"Betrag", role{amount: true}},
		{"Rechnungsbetrag", role{amount: true}},
		{"importe", role{amount: true}},
		{"revenue", role{amount: true}},
		{"Gross Sales", role{amount: true}},
		{"Quantity", role{qty: true}},
		{"qty", role{qty: true}},
		{"Menge", role{qty: true}},
		{"InvoiceNo", role{order: true}},
		{"Order ID", role{order: true}},
		{"Order Status", role{status: true}},
		{"Financial Status", role{status: true}},
		{"État", role{status: true}},
		{"Cancelled at", role{cancelled: true}},
		{"refunded", role{cancelled: true}},
		{"amount_refunded", role{}}, // an amount, demoted below the order's: not a cancellation
		{"days_since_prior_order", role{relative: true}},
		{"Event Type", role{status: true}},
		{"Payment Type", role{}},
		{"Country", role{}},
		{"Description", role{}},
	}
	for _, tc := range tests {
		n := readName(tc.name)
		got := role{customer: n.customer >= 2, time: n.timeName, amount: n.amount >= 2, qty: n.qty, order: n.order, status: n.status > 0,
			cancelled: n.cancelled, relative: n.relative}
		if got != tc.want {
			t.Errorf("readName(%q): got %+v, want %+v (%+v)", tc.name, got, tc.want, n)
		}
	}
}
