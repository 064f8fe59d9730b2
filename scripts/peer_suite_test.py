#!/usr/bin/env python3
"""Checks of peer_suite.py's mapping reader and default cutoffs against hand-worked values
(the same case as model/suite TestWithDefaultCutoffs). Run: /usr/bin/python3 scripts/peer_suite_test.py"""
import os
import sys
import tempfile
import unittest

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_suite as ps  # noqa: E402


def read_mapped(data, mapping):
    """ps.read_mapped of the bytes data through the mapping YAML text."""
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/f.csv", "wb") as f:
            f.write(data)
        with open(f"{d}/m.yaml", "w") as f:
            f.write(mapping)
        return ps.read_mapped(f"{d}/f.csv", f"{d}/m.yaml")


class PeerSuiteTest(unittest.TestCase):
    def test_strptime_format(self):
        self.assertEqual(ps.strptime_format("2006-01-02T15:04:05Z07:00"), "%Y-%m-%dT%H:%M:%S%z")
        self.assertEqual(ps.strptime_format("02.01.2006"), "%d.%m.%Y")

    def test_default_cutoffs(self):
        ev = pd.DataFrame({"time": pd.to_datetime(["2024-06-30 18:00", "2024-01-01 10:00", "2024-03-01"])})
        test, train = ps.default_cutoffs(ev)
        self.assertEqual(test, pd.Timestamp("2024-06-01"))
        self.assertEqual(train, [pd.Timestamp(d) for d in ("2024-02-02", "2024-03-03", "2024-04-02", "2024-05-02")])
        with self.assertRaises(ValueError):
            ps.default_cutoffs(ev.iloc[:1])

    def test_default_cutoffs_in_zone(self):
        # Berlin midnights of 2024-01-01 and 2024-06-30 are 2023-12-31 23:00 and 2024-06-29 22:00 UTC;
        # counted in Berlin days the span and the cutoffs are those of test_default_cutoffs.
        ev = pd.DataFrame({"time": pd.to_datetime(["2023-12-31 23:00", "2024-06-29 22:00"])})
        test, train = ps.default_cutoffs(ev, zone="Europe/Berlin")
        self.assertEqual(test, pd.Timestamp("2024-06-01"))
        self.assertEqual(train[0], pd.Timestamp("2024-02-02"))
        self.assertEqual(ps.default_cutoffs(ev)[0], pd.Timestamp("2024-05-31"))  # in UTC days

    def test_read_mapped_decimal_comma_and_zone(self):
        with tempfile.TemporaryDirectory() as d:
            open(f"{d}/de.csv", "w").write("Kunde;Datum;Status;Betrag\nK1;01.07.2024;bezahlt;1.234,5\n"
                                           "K2;02.07.2024;storniert;3,00\nK3;03.07.2024;bezahlt;0,07\n")
            open(f"{d}/de.yaml", "w").write('header: true\ndelimiter: ";"\ndecimal: ","\ncustomer: Kunde\n'
                                            'time: {column: Datum, layout: "02.01.2006", zone: Europe/Berlin}\n'
                                            'kind: {column: Status, values: {bezahlt: purchase}, ignore: [storniert]}\n'
                                            'amount: Betrag\n')
            ev = ps.read_mapped(f"{d}/de.csv", f"{d}/de.yaml")
        self.assertEqual(list(ev["customer"]), ["K1", "K3"])
        self.assertEqual(list(ev["amount"]), [1234.5, 0.07])
        # Midnight in Berlin (UTC+2 in July) is 22:00 UTC the day before.
        self.assertEqual(list(ev["time"]), [pd.Timestamp("2024-06-30 22:00"), pd.Timestamp("2024-07-02 22:00")])


    def test_read_mapped_header_from_names(self):
        # No header key: named columns mean a header line, as in Kairos; indexes alone mean none.
        with tempfile.TemporaryDirectory() as d:
            open(f"{d}/a.csv", "w").write("id,ts\na,1000\nb,2000\n")
            open(f"{d}/a.yaml", "w").write("customer: id\ntime: {column: ts, layout: unix}\nkind: {constant: purchase}\n")
            ev = ps.read_mapped(f"{d}/a.csv", f"{d}/a.yaml")
            self.assertEqual(list(ev["customer"]), ["a", "b"])
            self.assertFalse(ps.names_a_column({"customer": 1, "time": {"column": 2, "layout": "unix"}}))
            self.assertTrue(ps.names_a_column({"customer": 1, "time": {"column": 2, "time_of_day": "Time"}}))

    def test_read_mapped_day_numbers(self):
        # layout days: 2020 is a leap year, so day 711 is 2021-12-12 (by hand, as in Go's TestDayNumberLayout).
        with tempfile.TemporaryDirectory() as d:
            open(f"{d}/dh.csv", "w").write("household_key,DAY\na,0\nb,711\nc,711.5\nd,-3\nd,abc\n")
            open(f"{d}/dh.yaml", "w").write("customer: household_key\ntime: {column: DAY, layout: days, epoch: 2020-01-01}\n"
                                            "kind: {constant: purchase}\n")
            ev = ps.read_mapped(f"{d}/dh.csv", f"{d}/dh.yaml")
        self.assertEqual(list(ev["customer"]), ["a", "b", "c"])
        self.assertEqual(list(ev["time"]), [pd.Timestamp("2020-01-01"), pd.Timestamp("2021-12-12"), pd.Timestamp("2021-12-12 12:00")])

    def test_read_mapped_quantity(self):
        # 3 × 2.50 = 7.50; the return (quantity -1) is not a purchase.
        with tempfile.TemporaryDirectory() as d:
            open(f"{d}/q.csv", "w").write("c,t,qty,price\na,2024-01-01,3,2.50\na,2024-01-02,-1,2.50\n")
            open(f"{d}/q.yaml", "w").write('header: true\ncustomer: c\ntime: {column: t, layout: "2006-01-02"}\n'
                                           'kind: {constant: purchase}\namount: price\nquantity: qty\n')
            ev = ps.read_mapped(f"{d}/q.csv", f"{d}/q.yaml")
        self.assertEqual(list(ev["amount"]), [7.5])

    def test_read_mapped_round2(self):
        # A Windows-1252 Shopify-style export: e-mails trimmed and lowercased, a cancelled order and a
        # pending one dropped, 1200 JPY x 0.00625 = 7.5, GBP without a rate dropped, a float-written id
        # and one with a blank dropped without the rules that read them.
        data = ("Email;Name;Status;Paid at;Total;Cur;Cancelled at\r\n"
                " A@x.com ;Renée;paid;05.01.2023;12,50;EUR;\r\n"
                "a@x.com;Zoë;paid;06.01.2023;1200;JPY;\r\n"
                "b@x.com;€;paid;07.01.2023;3;EUR;07.01.2023\r\n"
                "c@x.com;x;pending;;3;EUR;\r\n"
                "d@x.com;x;paid;08.01.2023;3;GBP;\r\n").encode("cp1252")
        m = ('header: true\ndelimiter: ";"\nencoding: windows-1252\ndecimal: ","\ncustomer: Email\n'
             'customer_normalize: [trim, lower]\ntime: {column: Paid at, layout: "02.01.2006"}\n'
             'kind: {column: Status, values: {paid: purchase}, ignore: [pending]}\ncancelled: Cancelled at\n'
             'amount: Total\ncurrency: {column: Cur, rates: {EUR: 1, JPY: 0.00625}}\n')
        ev = read_mapped(data, m)
        self.assertEqual(list(ev["customer"]), ["a@x.com", "a@x.com"])
        self.assertEqual(list(ev["amount"]), [12.5, 7.5])
        ev = read_mapped(data, m.replace("customer_normalize: [trim, lower]\n", ""))
        self.assertEqual(list(ev["customer"]), ["a@x.com"])

    def test_read_mapped_excel_two_columns_us_dates(self):
        # Excel 40513.35 = 2010-12-01 08:24; "12/10/2010" + "8:05" = 10 December 08:05; "17850.0" = "17850".
        ev = read_mapped(b"c,t\n17850.0,40513.35\n17850,61\n,40513\n",
                         'header: true\ncustomer: c\ncustomer_normalize: [integer]\nmissing_customer: ignore\n'
                         'time: {column: t, layout: excel}\nkind: {constant: purchase}\n')
        self.assertEqual(list(ev["customer"]), ["17850", "17850"])
        self.assertEqual(list(ev["time"]), [pd.Timestamp("2010-12-01 08:24"), pd.Timestamp("1900-03-01")])
        ev = read_mapped(b"c,d,h\n1,12/10/2010,8:05\n2,1/2/2011,14:30\n",
                         'header: true\ncustomer: c\ntime: {column: d, time_of_day: h, layout: "1/2/2006 15:04"}\n'
                         'kind: {constant: purchase}\n')
        self.assertEqual(list(ev["time"]), [pd.Timestamp("2010-12-10 08:05"), pd.Timestamp("2011-01-02 14:30")])

    def test_mapped_numbers(self):
        # Worked by hand from the rule in docs/operations.md (the thousands and decimal keys).
        cases = [
            ({}, ["12.5", "1e3", "1,234.50"], [12.5, 1000.0, None]),
            ({"thousands": ","}, ["1,234.50", "1,234,567", "1,23.5", "1,2345", "999.99"], [1234.5, 1234567.0, None, None, 999.99]),
            ({"decimal": ","}, ["1.234,5", "35,58", "12.5", "7"], [1234.5, 35.58, None, 7.0]),
            ({"decimal": ",", "thousands": " "}, ["1 234,5", "1.234,5"], [1234.5, None]),
            ({"thousands": "'"}, ["1'234.05", "-12'000"], [1234.05, -12000.0]),
        ]
        for m, given, want in cases:
            got = ps.mapped_numbers(pd.Series(given), m).tolist()
            for g, w, text in zip(got, want, given):
                if w is None:
                    self.assertTrue(pd.isna(g), f"{m} {text!r}: got {g}, want not a number")
                else:
                    self.assertEqual(g, w, f"{m} {text!r}")

    def test_strptime_format_round3(self):
        self.assertEqual(ps.strptime_format("Jan 2, 2006 3:04:05 PM"), "%b %d, %Y %I:%M:%S %p")
        self.assertEqual(ps.strptime_format("01/02/06 15:04:05"), "%m/%d/%y %H:%M:%S")
        self.assertEqual(ps.strptime_format("02-Jan-2006"), "%d-%b-%Y")
        self.assertEqual(ps.strptime_format("January 2, 2006"), "%B %d, %Y")

    def test_mapped_numbers_round3(self):
        # currency_symbol, accounting_negatives and a no-break space between thousands, by hand.
        cases = [
            ({"thousands": ",", "currency_symbol": ["$", "US$"], "accounting_negatives": True},
             ["$1,234.50", "US$ 7", "-$5.25", "$-5.25", "($12.00)", "€3", "(-1)", "1$2", "$ -", "(-)", "1,234.50-", "-1-"],
             [1234.5, 7.0, -5.25, -5.25, -12.0, None, None, None, 0.0, None, -1234.5, None]),
            ({"decimal": ",", "thousands": " ", "currency_symbol": "€"},
             ["1\u202f234,50\u00a0€", "€ 12,50", "12,50 €", "1.234,50 €"], [1234.5, 12.5, 12.5, None]),
        ]
        for m, given, want in cases:
            got = ps.mapped_numbers(pd.Series(given), m).tolist()
            for g, w, text in zip(got, want, given):
                if w is None:
                    self.assertTrue(pd.isna(g), f"{m} {text!r}: got {g}, want not a number")
                else:
                    self.assertEqual(g, w, f"{m} {text!r}")

    def test_read_mapped_round3(self):
        # Stripe-like: 1250 cents USD = 12.50; 500 JPY (no minor unit) x 0.0067 = 3.35; a refunded
        # charge (true) and a failed one dropped; "false" is no cancellation; customer "0" is a guest;
        # "A+x@B.com" is a@b.com under plus_tag.
        data = (b"customer,created,status,amount,currency,refunded\n"
                b"A+x@B.com,1700000000,succeeded,1250,usd,false\n"
                b"a@b.com,1700000100,succeeded,500,JPY,False\n"
                b"c@b.com,1700000200,succeeded,900,usd,true\n"
                b"0,1700000300,succeeded,900,usd,false\n"
                b"d@b.com,1700000400,failed,900,usd,false\n")
        m = ('header: true\ncustomer: customer\ncustomer_normalize: [lower, plus_tag]\nmissing_customer_values: ["0"]\n'
             'missing_customer: ignore\ntime: {column: created, layout: unix}\n'
             'kind: {column: status, values: {succeeded: purchase}, ignore: [failed]}\ncancelled: refunded\n'
             'amount: amount\namount_unit: minor\ncurrency: {column: currency, rates: {usd: 1, JPY: 0.0067}}\n')
        ev = read_mapped(data, m)
        self.assertEqual(list(ev["customer"]), ["a@b.com", "a@b.com"])
        self.assertEqual([round(a, 9) for a in ev["amount"]], [12.5, 3.35])

    def test_read_mapped_order(self):
        # TestOrderLines' file: orders 1001 (twice, and again further down), 1002 refunded, 1003, 1004
        # with a line of another customer (bad), a line without an order id, 1005 whose first line has
        # a bad date: purchases a 30, a 5, c 7, e 9, f 4.
        data = (b"Order ID,Date,Customer,Status,Order Total,SKU\n1001,2024-01-02,a,completed,30.00,X\n"
                b"1001,2024-01-02,a,completed,30.00,Y\n1002,2024-01-03,b,refunded,12.00,X\n"
                b"1002,2024-01-03,b,refunded,12.00,Z\n1003,2024-01-04,a,completed,5.00,X\n"
                b"1001,2024-01-02,a,completed,30.00,Z\n1004,2024-01-05,c,completed,7.00,X\n"
                b"1004,2024-01-05,d,completed,7.00,Y\n,2024-01-06,e,completed,9.00,X\n"
                b"1005,06.01.2024,f,completed,4.00,X\n1005,2024-01-07,f,completed,4.00,Y\n")
        ev = read_mapped(data, 'header: true\ncustomer: Customer\ntime: {column: Date, layout: "2006-01-02"}\n'
                               'kind: {column: Status, values: {completed: purchase}, ignore: [refunded]}\n'
                               'amount: Order Total\norder: Order ID\n')
        self.assertEqual(list(zip(ev["customer"], ev["amount"])), [("a", 30.0), ("a", 5.0), ("c", 7.0), ("e", 9.0), ("f", 4.0)])

    def test_read_mapped_json_lines(self):
        # pandas' to_json lines: a float id, null, a number kept as written, a blank line, an object
        # value (a bad row), a key no object has (an empty item).
        data = (b'{"c":17850.0,"t":"2024-01-02","a":2.55,"q":6}\n\n{"c":null,"t":"2024-01-02","a":1,"q":1}\n'
                b'{"c":"13047","t":"2024-01-03","a":"4.25","q":"3"}\n{"c":1,"t":"2024-01-03","a":{"x":1},"q":1}\n')
        ev = read_mapped(data, 'header: true\ncustomer: c\ncustomer_normalize: [integer]\nmissing_customer: ignore\n'
                               'time: {column: t, layout: "2006-01-02"}\nkind: {constant: purchase}\namount: a\nquantity: q\n'
                               'item: sku\n')
        self.assertEqual(list(ev["customer"]), ["17850", "13047"])
        self.assertEqual([round(a, 9) for a in ev["amount"]], [15.3, 12.75])


if __name__ == "__main__":
    unittest.main()
