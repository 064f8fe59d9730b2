package ingest

import (
	"fmt"

	"github.com/kairos-fl/kairos/model"
)

// taobaoParser reads Alibaba's UserBehavior.csv: user_id, item_id,
// category_id, behavior_type, timestamp (unix seconds), no header, no quoting.
type taobaoParser struct {
	sp         splitter
	customers  *interner
	items      *interner
	categories *interner
}

func newTaobaoParser() *taobaoParser {
	return &taobaoParser{
		sp:         splitter{delim: ',', fields: make([][]byte, 0, 8)},
		customers:  newInterner(1 << 14),
		items:      newInterner(1 << 12),
		categories: newInterner(1 << 10),
	}
}

func (p *taobaoParser) header() bool                    { return false }
func (p *taobaoParser) parseHeader([]byte) *RowError    { return nil }
func (p *taobaoParser) column(line []byte, off int) int { return p.sp.column(line, off) }

func (p *taobaoParser) parse(line []byte) (model.Event, string, *RowError) {
	f, col, err := p.sp.split(line)
	if err != nil {
		return model.Event{}, "", &RowError{Column: col, Reason: ReasonBadQuote, Err: err}
	}
	if len(f) != 5 {
		return model.Event{}, "", &RowError{Column: min(len(f), 5) + 1, Reason: ReasonColumnCount, Err: fmt.Errorf("%d columns, want 5", len(f))}
	}
	if len(f[0]) == 0 {
		return model.Event{}, "", &RowError{Column: 1, Reason: ReasonMissingCustomer}
	}
	k, ok := taobaoKind(f[3])
	if !ok {
		return model.Event{}, "", &RowError{Column: 4, Reason: ReasonUnknownKind, Value: string(f[3]), Err: fmt.Errorf("behavior %q (want pv, cart, fav or buy)", f[3])}
	}
	t, err := parseUnix(f[4], 1)
	if err != nil {
		return model.Event{}, "", &RowError{Column: 5, Reason: ReasonBadTime, Err: err}
	}
	ev := model.Event{Customer: p.customers.get(f[0]), Time: t, Kind: k, Item: p.items.get(f[1]), Category: p.categories.get(f[2])}
	return ev, "", nil
}
