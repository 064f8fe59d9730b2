package ingest

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

func jsonMapping() *Mapping {
	return &Mapping{Header: true, Customer: Column{Name: "customer"}, Time: Column{Name: "ts"}, TimeLayout: LayoutUnix,
		Kind: Column{Name: "type"}, KindValues: map[string]model.Kind{"order": model.Purchase, "view": model.View},
		IgnoreKinds: []string{"refund"}, Amount: Column{Name: "total"}}
}

func csvMapping() *Mapping {
	return &Mapping{Customer: Column{Index: 1}, Time: Column{Index: 2}, TimeLayout: "2006-01-02 15:04:05",
		Kind: Column{Index: 3}, Amount: Column{Index: 4}}
}

func TestDecodeMessage(t *testing.T) {
	js, err := NewMessageDecoder(jsonMapping(), MessageJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	cs, err := NewMessageDecoder(csvMapping(), MessageCSV, paris)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		d    *MessageDecoder
		msg  string
		want model.Event
	}{
		{"json string time", js, `{"customer":"c1","ts":"1700000000","type":"order","total":12.5}`,
			model.Event{Customer: "c1", Time: time.Unix(1700000000, 0).UTC(), Kind: model.Purchase, Amount: 12.5, HasAmount: true}},
		{"json numbers", js, `{"customer":42,"ts":1700000001,"type":"view","extra":[1,2]}`,
			model.Event{Customer: "42", Time: time.Unix(1700000001, 0).UTC(), Kind: model.View}},
		{"json null amount", js, `{"customer":"c","ts":1,"type":"order","total":null}`,
			model.Event{Customer: "c", Time: time.Unix(1, 0).UTC(), Kind: model.Purchase}},
		// 2023-11-14 23:13:20 in Paris (UTC+1 in November) is 22:13:20 UTC.
		{"csv local time", cs, "c9,2023-11-14 23:13:20,purchase,3\r\n",
			model.Event{Customer: "c9", Time: time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC), Kind: model.Purchase, Amount: 3, HasAmount: true}},
		{"csv quoted", cs, `"c,1",2023-11-14 23:13:20,view,`,
			model.Event{Customer: "c,1", Time: time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC), Kind: model.View}},
	} {
		got, err := tc.d.Decode([]byte(tc.msg))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !got.Time.Equal(tc.want.Time) || got.Customer != tc.want.Customer || got.Kind != tc.want.Kind || got.Amount != tc.want.Amount || got.HasAmount != tc.want.HasAmount {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if _, err := js.Decode([]byte(`{"customer":"c","ts":1,"type":"refund"}`)); !errors.Is(err, ErrIgnoredKind) {
		t.Errorf("ignored kind: got %v, want ErrIgnoredKind", err)
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	js, _ := NewMessageDecoder(jsonMapping(), MessageJSON, nil)
	cs, _ := NewMessageDecoder(csvMapping(), MessageCSV, nil)
	for _, tc := range []struct {
		d           *MessageDecoder
		msg         string
		reason, fld string
	}{
		{js, `not json`, ReasonBadJSON, ""},
		{js, `null`, ReasonBadJSON, ""},
		{js, `[1]`, ReasonBadJSON, ""},
		{js, `{"customer":"c","ts":1,"type":"order","total":true}`, ReasonBadJSON, `"total"`},
		{js, `{"customer":"","ts":1,"type":"order"}`, ReasonMissingCustomer, `"customer"`},
		{js, `{"customer":"c","ts":"yesterday","type":"order"}`, ReasonBadTime, `"ts"`},
		{js, `{"customer":"c","ts":1,"type":"return"}`, ReasonUnknownKind, `"type"`},
		{js, `{"customer":"c","ts":1,"type":"order","total":-3}`, ReasonNegativeAmount, `"total"`},
		{js, "{\"customer\":\"\xff\"}", ReasonNotUTF8, ""},
		{cs, "c,2023-11-14 23:13:20,purchase", ReasonColumnCount, "#4"},
		{cs, "c,2023-11-14,purchase,1", ReasonBadTime, "#2"},
		{cs, "c,2023-11-14 23:13:20,purchase,1\nd,2023-11-14 23:13:20,purchase,1", ReasonColumnCount, ""},
	} {
		_, err := tc.d.Decode([]byte(tc.msg))
		var me *MessageError
		if !errors.As(err, &me) {
			t.Errorf("%q: got %v, want a *MessageError", tc.msg, err)
			continue
		}
		if me.Reason != tc.reason || me.Field != tc.fld {
			t.Errorf("%q: got reason %q field %q (%v), want %q %q", tc.msg, me.Reason, me.Field, err, tc.reason, tc.fld)
		}
	}
	if _, err := NewMessageDecoder(csvMapping(), MessageJSON, nil); err == nil {
		t.Error("JSON with index columns: want an error")
	}
	if _, err := NewMessageDecoder(jsonMapping(), MessageCSV, nil); err == nil {
		t.Error("CSV message with named columns: want an error")
	}
}

// FuzzDecodeMessage: no message panics the decoders, and an event decoded
// from JSON, written back as JSON, decodes to the same event.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"customer":"c1","ts":"1700000000","type":"order","total":12.5}`,
		`{"customer":42,"ts":1700000001,"type":"view"}`,
		"c9,2023-11-14 23:13:20,purchase,3",
		`"c,1",2023-11-14 23:13:20,view,`,
		`{"customer":"c","ts":1,"type":"refund"}`,
	} {
		f.Add([]byte(s))
	}
	js, _ := NewMessageDecoder(jsonMapping(), MessageJSON, nil)
	cs, _ := NewMessageDecoder(csvMapping(), MessageCSV, nil)
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _ = cs.Decode(msg)
		ev, err := js.Decode(msg)
		if err != nil {
			return
		}
		if len(ev.Customer) > MaxMessageCustomerBytes {
			t.Fatalf("customer id of %d bytes decoded, limit %d", len(ev.Customer), MaxMessageCustomerBytes)
		}
		kind := map[model.Kind]string{model.Purchase: "order", model.View: "view"}[ev.Kind]
		obj := map[string]any{"customer": ev.Customer, "ts": strconv.FormatInt(ev.Time.Unix(), 10), "type": kind}
		if ev.HasAmount {
			obj["total"] = ev.Amount
		}
		b, _ := json.Marshal(obj)
		ev2, err := js.Decode(b)
		if err != nil {
			t.Fatalf("re-encoded %s: %v", b, err)
		}
		if ev2.Customer != ev.Customer || !ev2.Time.Equal(ev.Time) || ev2.Kind != ev.Kind || ev2.Amount != ev.Amount || ev2.HasAmount != ev.HasAmount {
			t.Fatalf("round trip: got %+v, want %+v", ev2, ev)
		}
	})
}
