#!/usr/bin/env python3
"""Variants of the held-out exports for `kairos mapping suggest` (docs/benchmarks.md, "A mapping
suggested from the file"): from the folders scripts/heldout_logs.py, heldout_exports.py and
heldout_exports3.py wrote, every uncompressed export with a header is written again three ways,
each with its hand-written mapping carried along:

  reversed/  the columns in reverse order (a role must not depend on a column's place)
  noheader/  without the header line, the mapping by 1-based index (roles by content alone)
  german/    the header names translated into German (the names a German shop system writes)

Each variant folder gets a suite file, so that the answer key runs on them unchanged:

Usage: /usr/bin/python3 scripts/suggest_variants.py SRC_DIR OUT_DIR
then   KAIROS_SUGGEST_KEY=OUT_DIR go test -count=1 -v -run TestSuggestAnswerKey ./client/ingest/
SRC_DIR holds the held-out scripts' output folders. Never commit the files.
"""
import argparse
import csv
import glob
import os

import yaml

# German names for the headers the held-out scripts write; a name not listed stays as it is.
DE = {
    'customer_id': 'Kundennummer', 'customer': 'Kunde', 'Customer ID': 'Kunden-ID', 'CustomerID': 'KundenID', 'cust': 'Kundennr',
    'Customer Email': 'Kunden-E-Mail', 'Email': 'E-Mail', 'user_id': 'Nutzer-ID', 'buyer': 'Käufer', 'Customer User ID': 'Kundenkonto',
    'Customer': 'Kunde', 'created_at': 'Erstellt am', 'order_date': 'Bestelldatum', 'date': 'Datum', 'InvoiceDate': 'Rechnungsdatum',
    'Date': 'Datum', 'Paid at': 'Bezahlt am', 'Purchase Date': 'Kaufdatum', 'Order Date': 'Bestelldatum', 'ts': 'Zeitstempel',
    'created': 'Erstellt', 'time': 'Uhrzeit', 'Time': 'Uhrzeit', 'paid_at': 'Bezahlt am', 'total_eur': 'Gesamt EUR', 'amount': 'Betrag',
    'line_total': 'Zeilenbetrag', 'gmv': 'Umsatz', 'value': 'Wert', 'total': 'Gesamtbetrag', 'Total': 'Gesamtbetrag', 'Price': 'Preis',
    'UnitPrice': 'Einzelpreis', 'Quantity': 'Menge', 'qty': 'Menge', 'Order Total': 'Bestellsumme', 'Amount': 'Betrag',
    'Grand Total (Base)': 'Gesamtsumme (Basis)', 'Grand Total (Purchased)': 'Gesamtsumme (Bezahlt)', 'Gross Sales': 'Bruttoumsatz',
    'Net Sales': 'Nettoumsatz', 'Discounts': 'Rabatte', 'Tax': 'Steuer', 'Financial Status': 'Zahlungsstatus', 'Status': 'Status',
    'Order Status': 'Bestellstatus', 'status': 'Status', 'Event Type': 'Ereignistyp', 'Cancelled at': 'Storniert am', 'refunded': 'erstattet',
    'amount_refunded': 'Betrag erstattet', 'Currency': 'Währung', 'currency': 'Währung', 'Order Currency': 'Bestellwährung',
    'Order ID': 'Bestellnummer', 'order_id': 'Bestellnummer', 'Invoice': 'Rechnung', 'InvoiceNo': 'Rechnungsnr', 'sku': 'Artikelnummer',
    'StockCode': 'Artikelnummer', 'Product SKU': 'Artikelnummer', 'Description': 'Beschreibung', 'Country': 'Land', 'Subtotal': 'Zwischensumme',
    'Lineitem quantity': 'Menge Position', 'Lineitem name': 'Position Name', 'Fulfillment Status': 'Versandstatus', 'Name': 'Bestellname',
    'order_ref': 'Bestellreferenz', 'Purchase Point': 'Verkaufsstelle', 'Bill-to Name': 'Rechnungsname', 'Ship-to Name': 'Liefername',
    'No.': 'Nr.', 'Memo': 'Notiz', 'Product Qty': 'Artikel Menge', 'Product Unit Price': 'Artikel Einzelpreis', 'Billing Email': 'Rechnungs-E-Mail',
    'line': 'Zeile', 'id': 'ID', 'Transaction ID': 'Transaktions-ID', 'Card Brand': 'Kartenmarke', 'Time Zone': 'Zeitzone',
}

COLUMN_KEYS = ['customer', 'amount', 'quantity', 'cancelled', 'order', 'item', 'category']


def rename(m, f):
    """Rewrites every column of mapping m through f."""
    for k in COLUMN_KEYS:
        if k in m:
            m[k] = f(m[k])
    for k in ['column', 'time_of_day']:
        if k in m['time']:
            m['time'][k] = f(m['time'][k])
    if 'column' in m.get('kind', {}):
        m['kind']['column'] = f(m['kind']['column'])
    if 'currency' in m:
        m['currency']['column'] = f(m['currency']['column'])
    return m


def exports(src):
    """Yields (name, rows, mapping, delimiter, encoding) for every uncompressed export with a header."""
    for suite in sorted(glob.glob(os.path.join(src, '*', '*.yaml'))):
        d = yaml.safe_load(open(suite))
        if not isinstance(d, dict) or 'datasets' not in d:
            continue
        base = os.path.dirname(suite)
        for e in d['datasets']:
            path, mp = os.path.join(base, e['path']), os.path.join(base, e['mapping'])
            m = yaml.safe_load(open(mp))
            if path.endswith('.gz') or m.get('header') is False or isinstance(m.get('customer'), int):
                continue
            delim = m.get('delimiter', ',')
            enc = {'windows-1252': 'cp1252'}.get(m.get('encoding', 'utf-8'), m.get('encoding', 'utf-8'))
            with open(path, newline='', encoding=enc) as f:
                rows = list(csv.reader(f, delimiter=delim))
            rows[0] = [h.strip().lstrip('\ufeff') for h in rows[0]]
            yield e['name'], rows, m, delim, enc


def write(out, variant, name, rows, m, delim, enc, suites):
    d = os.path.join(out, variant)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + '.csv'), 'w', newline='', encoding=enc) as f:
        w = csv.writer(f, delimiter=delim, lineterminator='\n')
        w.writerows(rows)
    with open(os.path.join(d, name + '.yaml'), 'w') as f:
        yaml.safe_dump(m, f, allow_unicode=True)
    suites.setdefault(variant, []).append({'name': variant + '-' + name, 'path': name + '.csv', 'format': 'csv', 'mapping': name + '.yaml'})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('src')
    ap.add_argument('out')
    a = ap.parse_args()
    suites = {}
    for name, rows, m, delim, enc in exports(a.src):
        hdr = rows[0]
        write(a.out, 'reversed', name, [r[::-1] for r in rows], dict(m), delim, enc, suites)
        idx = lambda n: hdr.index(n) + 1
        nh = rename(yaml.safe_load(yaml.safe_dump(m)), idx)
        nh['header'] = False
        write(a.out, 'noheader', name, rows[1:], nh, delim, enc, suites)
        new, seen = [], set()
        for h in hdr:
            t = DE.get(h, h)
            if t in seen:
                t = t + ' ' + h
            seen.add(t)
            new.append(t)
        tr = dict(zip(hdr, new))
        write(a.out, 'german', name, [new] + rows[1:], rename(yaml.safe_load(yaml.safe_dump(m)), lambda n: tr[n]), delim, enc, suites)
    for variant, ds in suites.items():
        with open(os.path.join(a.out, variant, 'suite.yaml'), 'w') as f:
            yaml.safe_dump({'builtin': False, 'datasets': ds}, f, allow_unicode=True)
        print(variant, len(ds), 'exports')


if __name__ == '__main__':
    main()
