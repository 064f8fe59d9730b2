package ingest

import (
	"errors"
	"strings"
	"testing"
)

// TestDecodeMessageNULCustomer: a NUL character in the customer id is a bad
// message naming the customer field, in JSON ("\u0000") and in CSV (the
// byte); before session 18's review both decoded to an event whose id the
// PostgreSQL live store could not store.
func TestDecodeMessageNULCustomer(t *testing.T) {
	js, cs := testMessageDecoders(t)
	for _, tt := range []struct {
		d     *MessageDecoder
		msg   string
		field string
	}{
		{js, `{"customer":"a\u0000b","ts":1700000000,"type":"view"}`, `"customer"`},
		{js, `{"customer":"\u0000","ts":1700000000,"type":"order","total":1}`, `"customer"`},
		{cs, "a\x00b,2023-11-14 23:13:20,view,", "#1"},
	} {
		_, err := tt.d.Decode([]byte(tt.msg))
		var me *MessageError
		if !errors.As(err, &me) || me.Reason != ReasonNULCustomer || me.Field != tt.field {
			t.Errorf("%q: got %v, want a %q error in field %s", tt.msg, err, ReasonNULCustomer, tt.field)
		}
	}
	// A NUL elsewhere (an item, say) is no concern of the store's key.
	if _, err := js.Decode([]byte(`{"customer":"ok","ts":1700000000,"type":"view"}`)); err != nil {
		t.Errorf("plain message: %v", err)
	}
}

// TestDecodeMessageLongCustomer (review round 4): a customer id longer than
// MaxMessageCustomerBytes is a bad message naming the field and both
// lengths, in both encodings; one of exactly the limit is an event.
func TestDecodeMessageLongCustomer(t *testing.T) {
	js, cs := testMessageDecoders(t)
	at := strings.Repeat("é", MaxMessageCustomerBytes/2) // 1,024 bytes, 512 characters
	over := at + "x"
	for _, tt := range []struct {
		d     *MessageDecoder
		msg   string
		field string
	}{
		{js, `{"customer":"` + over + `","ts":1700000000,"type":"view"}`, `"customer"`},
		{cs, over + ",2023-11-14 23:13:20,view,", "#1"},
	} {
		_, err := tt.d.Decode([]byte(tt.msg))
		var me *MessageError
		if !errors.As(err, &me) || me.Reason != ReasonLongCustomer || me.Field != tt.field ||
			!strings.Contains(err.Error(), "1025 bytes, limit 1024") {
			t.Errorf("%d-byte customer: got %v, want a %q error in field %s naming 1025 and 1024", len(over), err, ReasonLongCustomer, tt.field)
		}
	}
	for _, d := range []*MessageDecoder{js, cs} {
		msg := `{"customer":"` + at + `","ts":1700000000,"type":"view"}`
		if d == cs {
			msg = at + ",2023-11-14 23:13:20,view,"
		}
		if ev, err := d.Decode([]byte(msg)); err != nil || ev.Customer != at {
			t.Errorf("customer of exactly %d bytes: %v", len(at), err)
		}
	}
}

// testMessageDecoders returns a JSON and a CSV decoder of the tests' mappings.
func testMessageDecoders(t *testing.T) (js, cs *MessageDecoder) {
	t.Helper()
	js, err := NewMessageDecoder(jsonMapping(), MessageJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err = NewMessageDecoder(csvMapping(), MessageCSV, nil)
	if err != nil {
		t.Fatal(err)
	}
	return js, cs
}
