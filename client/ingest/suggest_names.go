package ingest

import (
	"strings"
	"unicode"
)

// nameInfo is what a column's header name says about its role, in the
// languages shop exports are written in. A name only proposes a role: the
// column's content must confirm it.
type nameInfo struct {
	label     string // the header name, or #index without a header
	customer  int    // 0 none, 1 weak (a name), 2 user or e-mail, 3 customer, +1 for an id
	timeName  bool
	timeScore int // 0 none; higher is a likelier order time
	dayName   bool
	relative  bool // days since a previous order: no date
	partial   bool // a weekday or an hour: part of a time
	amount    int  // 0 none, 1 demoted (tax, net, sub), 2 unit price, 3 a total or amount
	price     bool
	qty       bool
	order     bool
	status    int // 0 none, 1 fulfilment or shipping status, 2 status
	cancelled bool
	currency  bool
}

// words splits a header name into lower-case words ("Customer ID",
// "customer_id" and "CustomerID" are customer, id).
func words(name string) []string {
	var out []string
	var cur []rune
	rs := []rune(name)
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]):
			flush()
			cur = append(cur, r)
		case unicode.IsUpper(r) && i > 0 && i+1 < len(rs) && unicode.IsUpper(rs[i-1]) && unicode.IsLower(rs[i+1]):
			flush() // "IDClient"
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return out
}

// has reports whether any word starts with one of the stems, or holds a
// stem of five letters or more (German compounds: "Kundennummer" starts
// with "kunde", "Rechnungsbetrag" ends with "betrag").
func has(ws []string, stems ...string) bool {
	for _, w := range ws {
		for _, s := range stems {
			if strings.HasPrefix(w, s) || len(s) >= 5 && strings.Contains(w, s) {
				return true
			}
		}
	}
	return false
}

// is reports whether any word is exactly one of the given words.
func is(ws []string, names ...string) bool {
	for _, w := range ws {
		for _, n := range names {
			if w == n {
				return true
			}
		}
	}
	return false
}

// readName reads a header name.
func readName(label string) nameInfo {
	ws := words(label)
	n := nameInfo{label: label}
	idWord := is(ws, "id", "no", "nr", "number", "nummer", "num", "code", "ref", "key", "numero", "número") || has(ws, "kundennummer", "kundennr")
	switch {
	case has(ws, "customer", "kunde", "client", "cliente", "buyer", "käufer", "kaeufer", "comprador", "acheteur", "klant") || is(ws, "cust", "custid", "customerid"):
		n.customer = 3
	case has(ws, "user", "member", "shopper", "account", "usuario", "utilisateur", "nutzer", "benutzer", "konto") || is(ws, "email", "mail"):
		n.customer = 2
	}
	if n.customer > 0 && (idWord || is(ws, "email", "mail")) {
		n.customer++
	}
	if n.customer > 0 && has(ws, "name", "nom", "nombre", "city", "country", "address", "phone", "zip", "type", "group", "segment") {
		n.customer = 1
	}
	n.relative = has(ws, "since", "prior", "ago", "gap", "between", "seit") || is(ws, "days")
	// A day of the week or an hour alone is a part of a time, not one.
	n.partial = is(ws, "dow", "hour", "weekday", "wochentag", "stunde")
	n.cancelled = has(ws, "cancel", "storn", "annul", "void") || is(ws, "refunded", "returned", "erstattet", "reembolsado", "remboursé", "rembourse")
	n.dayName = is(ws, "day", "tag", "dia", "día", "jour", "daynum", "day_number")
	n.timeName = !n.relative && !n.partial && !n.cancelled && (n.dayName || has(ws, "date", "datum", "fecha", "time", "zeit", "hora", "heure", "timestamp", "created", "ordered", "purchased", "bestelldatum", "erstellt", "creado", "créé", "creation") ||
		is(ws, "ts", "at", "on", "am", "when", "tstamp", "data", "le"))
	if n.timeName {
		n.timeScore = 2
		if has(ws, "order", "purchase", "paid", "invoice", "bestell", "pedido", "commande", "created", "transaction", "sale", "kauf") {
			n.timeScore = 3
		}
		if has(ws, "updat", "modif", "ship", "deliver", "due", "birth", "signup", "regist", "login", "expir", "fulfil", "refund", "first", "last",
			"liefer", "versand", "geburt", "geändert", "envío", "entrega", "livraison", "naissance") {
			n.timeScore = 1
		}
	}
	switch {
	case has(ws, "total", "amount", "betrag", "importe", "montant", "revenue", "sales", "umsatz", "gmv", "value", "sum", "summe", "gross", "brutto", "spend", "paid", "gesamt", "wert",
		"monto", "venta", "valor", "chiffre", "totaal", "bedrag", "importo") && !n.timeName:
		n.amount = 3
	case has(ws, "price", "preis", "precio", "prix", "prezzo", "unitprice"):
		n.amount, n.price = 2, true
	}
	if n.amount > 0 && has(ws, "sub", "net", "tax", "vat", "mwst", "steuer", "discount", "rabatt", "shipping", "versand", "fee", "refund", "cost", "cogs", "margin", "tip", "item", "count", "weight",
		"zwischen", "erstatt", "gebühr", "porto", "impuesto", "descuento", "remise", "frais") {
		n.amount = 1
	}
	if has(ws, "qty", "quantity", "menge", "cantidad", "quantit", "anzahl", "stück", "stueck", "pieces", "units") || is(ws, "count", "cds", "qte", "qté") {
		n.qty = true
		n.amount = 0
	}
	n.currency = has(ws, "currency", "währung", "waehrung", "moneda", "devise", "valuta") || is(ws, "cur", "ccy", "curr")
	// A type is an event's only when the name says so ("Event Type", "type"):
	// "Payment Type" or "Customer Type" is not.
	typeWord := is(ws, "event", "type", "typ", "tipo") && (len(ws) == 1 || has(ws, "event", "transaction", "action", "ereignis", "vorgang"))
	if has(ws, "status", "state", "état", "etat", "estado", "zustand", "behavior", "behaviour", "ereignis") || typeWord {
		n.status = 2
		if has(ws, "fulfil", "ship", "deliver", "versand", "livraison") {
			n.status = 1
		}
	}
	if n.amount > 0 {
		n.cancelled = false // "amount_refunded" is an amount
	}
	n.order = !n.timeName && !n.relative && !n.partial && !n.currency && n.status == 0 && n.amount == 0 && n.customer == 0 && (has(ws, "order", "invoice", "bestell", "pedido", "commande", "transaction", "receipt", "rechnung", "beleg", "factura", "facture") ||
		is(ws, "invoiceno"))
	return n
}
