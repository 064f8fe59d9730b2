package ingest

import (
	"bytes"
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// cdnowParser reads CDNOW_master.txt (sample=false) and CDNOW_sample.txt
// (sample=true). Both are whitespace-separated; the sample has one extra
// leading column, the customer's id in the master file.
type cdnowParser struct {
	sample    bool
	fields    [][]byte
	dates     dateCache
	customers *interner
}

func newCDNOWParser(sample bool, loc *time.Location) *cdnowParser {
	return &cdnowParser{sample: sample, fields: make([][]byte, 0, 8), dates: dateCache{loc: loc}, customers: newInterner(1 << 14)}
}

func (p *cdnowParser) header() bool { return !p.sample }

func (p *cdnowParser) parseHeader(line []byte) *RowError {
	want := []string{"customer_id", "date", "number_of_cds", "dollar_value"}
	f := splitSpace(p.fields, line)
	if len(f) != len(want) {
		return &RowError{Column: min(len(f), len(want)) + 1, Reason: ReasonColumnCount,
			Err: fmt.Errorf("header has %d columns, want %d (%v)", len(f), len(want), want)}
	}
	for i, w := range want {
		if !bytes.Equal(f[i], []byte(w)) {
			return &RowError{Column: i + 1, Reason: ReasonColumnCount, Err: fmt.Errorf("header column %q, want %q", f[i], w)}
		}
	}
	return nil
}

func (p *cdnowParser) column(line []byte, off int) int { return spaceColumn(line, off) }

func (p *cdnowParser) parse(line []byte) (model.Event, string, *RowError) {
	f := splitSpace(p.fields, line)
	p.fields = f
	want := 4
	if p.sample {
		want = 5
	}
	if len(f) != want {
		return model.Event{}, "", &RowError{Column: min(len(f), want) + 1, Reason: ReasonColumnCount,
			Err: fmt.Errorf("%d columns, want %d", len(f), want)}
	}
	if p.sample {
		f = f[1:]
	}
	off := want - 4 // column offset of the customer field, 0-based
	if len(f[0]) == 0 {
		return model.Event{}, "", &RowError{Column: off + 1, Reason: ReasonMissingCustomer}
	}
	t, err := p.dates.parseYYYYMMDD(f[1])
	if err != nil {
		return model.Event{}, "", &RowError{Column: off + 2, Reason: ReasonBadTime, Err: err}
	}
	if _, ok := atoi(f[2]); !ok {
		return model.Event{}, "", &RowError{Column: off + 3, Reason: ReasonBadNumber, Err: fmt.Errorf("number of CDs %q is not a non-negative integer", f[2])}
	}
	amt, reason, err := parseAmount(f[3])
	if err != nil {
		return model.Event{}, "", &RowError{Column: off + 4, Reason: reason, Err: err}
	}
	ev := model.Event{Customer: p.customers.get(f[0]), Time: t, Kind: model.Purchase, Amount: amt, HasAmount: true}
	return ev, "", nil
}
