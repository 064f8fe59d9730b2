package ingest

import (
	"fmt"

	"github.com/kairos-fl/kairos/model"
)

// InvoiceMerger sums Online Retail lines into one purchase per (customer,
// invoice), for callers that want a purchase to mean a basket rather than a
// line. The export is not sorted by invoice, so a merger cannot stream: it
// holds one event per distinct invoice until Flush, and memory grows with the
// number of invoices (about 25,000 for the whole UCI export). Use it on
// exports of that scale, not on unbounded streams.
type InvoiceMerger struct {
	index map[invoiceKey]int
	evs   []model.Event
	lines []RetailLine
}

type invoiceKey struct{ customer, invoice string }

// Add merges one line; use it as ReadOnlineRetail's emit function. A line
// whose quantity would overflow its invoice's sum is refused, naming the
// invoice, and leaves the merged purchase as it was.
func (m *InvoiceMerger) Add(ev model.Event, l RetailLine) error {
	if m.index == nil {
		m.index = make(map[invoiceKey]int)
	}
	k := invoiceKey{ev.Customer, l.Invoice}
	i, ok := m.index[k]
	if !ok {
		m.index[k] = len(m.evs)
		ev.Item = "" // a basket has no single item
		m.evs = append(m.evs, ev)
		l.UnitPrice = 0
		m.lines = append(m.lines, l)
		return nil
	}
	sum := m.lines[i].Quantity + l.Quantity
	if (l.Quantity > 0 && sum < m.lines[i].Quantity) || (l.Quantity < 0 && sum > m.lines[i].Quantity) {
		// A wrapped sum would be a silently wrong basket; nothing is merged.
		return fmt.Errorf("merge invoice %q of customer %q: summed quantity %d + %d overflows", l.Invoice, ev.Customer, m.lines[i].Quantity, l.Quantity)
	}
	e := &m.evs[i]
	if ev.Time.Before(e.Time) {
		e.Time = ev.Time
	}
	e.Amount += ev.Amount
	m.lines[i].Quantity = sum
	return nil
}

// Len is the number of merged purchases held.
func (m *InvoiceMerger) Len() int { return len(m.evs) }

// Flush emits the merged purchases in the order their invoices first
// appeared, with Amount the sum over the invoice's lines, Item empty, and a
// RetailLine whose Quantity is the summed quantity and UnitPrice zero. It
// empties the merger.
func (m *InvoiceMerger) Flush(emit func(model.Event, RetailLine) error) error {
	for i, ev := range m.evs {
		if err := emit(ev, m.lines[i]); err != nil {
			return fmt.Errorf("flush invoices: %w", err)
		}
	}
	*m = InvoiceMerger{}
	return nil
}
