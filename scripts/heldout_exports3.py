#!/usr/bin/env python3
"""Exports a new user brings, round 3 (docs/benchmarks.md, "Exports a new user brings (round 3)"):
order exports of shop, payment, point-of-sale and accounting systems, made from the shared data,
each with the mapping a user writes from docs/operations.md, a suite file that leaves every cutoff
to the default rule, and expected.json: the purchases and customers an independent pandas reading
of the source data finds in each file (what `kairos eval` must report as events).

Usage: /usr/bin/python3 scripts/heldout_exports3.py OUT_DIR [--data-dir ../shared/data]
then   bin/kairos eval --dataset csv --data OUT_DIR/magento.csv --mapping OUT_DIR/magento.yaml
       bin/kairos eval --suite-file OUT_DIR/exports.yaml --json > kairos.json
       /usr/bin/python3 scripts/peer_suite.py --suite-file OUT_DIR/exports.yaml > peers.json
The files are written to OUT_DIR; never commit them. instacart.csv (relative days only) is not in
exports.yaml: Kairos refuses it (docs/operations.md, "Logs with relative days only").
"""
import argparse
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heldout_exports import cdnow, grocery, retail, retail_expected, write_suite  # noqa: E402  (the same readers of the sources, the same suite writer)

MAPPINGS = {
    # Magento 2's order grid export: "Dec 1, 2010 8:26:00 AM", "£1,234.50", e-mails in mixed case
    # and with plus tags, a status per order.
    "magento": """header: true
customer: Customer Email
customer_normalize: [trim, lower, plus_tag]
time: {column: Purchase Date, layout: "Jan 2, 2006 3:04:05 PM", zone: Europe/London}
kind:
  column: Status
  values: {complete: purchase, processing: purchase}
  ignore: [canceled, closed, pending]
amount: Grand Total (Base)
currency_symbol: "£"
thousands: ","
""",
    # WooCommerce's order export: wc- statuses, customer user 0 for a guest order.
    "woocommerce": """header: true
customer: Customer User ID
missing_customer_values: ["0"]
missing_customer: ignore
time: {column: Order Date, layout: "2006-01-02 15:04", zone: America/New_York}
kind:
  column: Order Status
  values: {wc-completed: purchase, wc-processing: purchase}
  ignore: [wc-refunded, wc-cancelled, wc-failed, wc-on-hold, wc-pending]
amount: Order Total
""",
    # PrestaShop in French: ";", UTF-8 with a byte-order mark, "1 234,50 €" with no-break
    # spaces, DD/MM/YYYY, French statuses.
    "prestashop": """header: true
delimiter: ";"
customer: ID client
time: {column: Date, layout: "02/01/2006 15:04:05", zone: Europe/Paris}
kind:
  column: État
  values: {Livré: purchase, Paiement accepté: purchase}
  ignore: [Annulé, Remboursé, En attente du paiement par chèque]
amount: Total
currency_symbol: "€"
decimal: ","
thousands: " "
""",
    # Stripe's charges: amount in the currency's minor unit (lower-case codes, JPY without
    # decimals), created in Unix seconds, refunded true/false, charges without a customer.
    "stripe": """header: true
customer: customer
missing_customer: ignore
time: {column: created, layout: unix}
kind:
  column: status
  values: {succeeded: purchase}
  ignore: [failed, pending]
cancelled: refunded
amount: amount
amount_unit: minor
currency: {column: currency, rates: {usd: 1, eur: 1.08, jpy: 0.0067}}
""",
    # Square POS transactions: date "12/01/10" and time apart, "£1,234.50", refunds as
    # "-£12.50" rows of event type Refund, walk-in customers without an id.
    "square": """header: true
customer: Customer ID
missing_customer: ignore
time: {column: Date, time_of_day: Time, layout: "01/02/06 15:04:05", zone: Europe/London}
kind:
  column: Event Type
  values: {Payment: purchase}
  ignore: [Refund]
amount: Gross Sales
currency_symbol: "£"
thousands: ","
""",
    # An accounting system's customer transaction report: "01-Dec-2010", credit notes as
    # accounting negatives "(1,234.50)", no type column.
    "accounting": """header: true
customer: Customer
time: {column: Date, layout: "02-Jan-2006", zone: Europe/London}
kind: {constant: purchase}
amount: Amount
thousands: ","
accounting_negatives: true
negative_amount: ignore
""",
    # A line-item order export (BigCommerce's, an order-export plugin's): one row per product, the
    # order's date, status and total repeated on each; RFC 1123 dates with an offset.
    "lineitems": """header: true
customer: Customer ID
time: {column: Order Date, layout: "Mon, 02 Jan 2006 15:04:05 -0700", zone: Europe/London}
kind:
  column: Order Status
  values: {Completed: purchase, Shipped: purchase}
  ignore: [Refunded, Cancelled, Awaiting Payment]
amount: Order Total
order: Order ID
""",
    # Online Retail's lines as pandas writes JSON Lines (to_json(orient="records", lines=True)):
    # CustomerID a float or null, ISO times with milliseconds, gzip-compressed.
    "jsonl": """header: true
customer: CustomerID
customer_normalize: [integer]
missing_customer: ignore
time: {column: InvoiceDate, layout: "2006-01-02T15:04:05.000", zone: Europe/London}
kind: {constant: purchase}
amount: UnitPrice
quantity: Quantity
negative_amount: ignore
""",
    # Instacart's shape: no dates, days since the customer's previous order (capped at 30).
    # A user's try; Kairos refuses it when the mapping is read.
    "instacart": """header: true
customer: user_id
time: {column: days_since_prior_order, layout: days}
kind: {constant: purchase}
""",
}

FILES = {k: k + ".csv" for k in MAPPINGS}
FILES["jsonl"] = "orders.jsonl.gz"

NAMES = {"magento": "magento-pound-symbols-plus-tags", "woocommerce": "woocommerce-guest-zero",
         "prestashop": "prestashop-french-nbsp-euro", "stripe": "stripe-minor-units-refunded",
         "square": "square-pos-two-digit-years", "accounting": "accounting-parentheses",
         "lineitems": "line-items-order-total-repeated", "jsonl": "pandas-json-lines-gzip"}


def by_invoice(r):
    """One row per Online Retail invoice: customer (<NA> for guests), first line's time, lines'
    total (Quantity × UnitPrice summed) and whether it is a cancellation (a C invoice)."""
    x = r.assign(total=r["Quantity"] * r["UnitPrice"], t=pd.to_datetime(r["InvoiceDate"]))
    inv = x.groupby("InvoiceNo", sort=False).agg(customer=("CustomerID", "first"), t=("t", "min"),
                                                 total=("total", "sum")).reset_index()
    inv["total"] = inv["total"].round(2)
    inv["cancel"] = inv["InvoiceNo"].str.startswith("C")
    return inv.sort_values(["t", "InvoiceNo"]).reset_index(drop=True)


def counts(cust, ok, amount=None):
    """What Kairos must read: purchases, their customers and, where the file has amounts, their sum
    (in the mapping's one currency, to the cent)."""
    ok = np.asarray(ok, dtype=bool)
    out = {"events": int(ok.sum()), "customers": int(pd.Series(np.asarray(cust))[ok].nunique())}
    if amount is not None:
        out["amount_sum"] = round(float(np.asarray(amount, dtype=float)[ok].sum()), 2)
    return out


def money(v, symbol, thousands=",", decimal="."):
    """v with two decimals, thousands grouped, the symbol before: "£1,234.50", "-£12.50"."""
    s = f"{abs(v):,.2f}".replace(",", "\0").replace(".", decimal).replace("\0", thousands)
    return ("-" if v < 0 else "") + symbol + s


def write_magento(out, inv, rng):
    x = inv[inv["customer"].notna() & ~inv["cancel"] & (inv["total"] >= 0)].reset_index(drop=True)
    n = len(x)
    status = rng.choice(["complete", "processing", "closed", "canceled", "pending"], n, p=[0.86, 0.03, 0.04, 0.04, 0.03])
    emails = []
    for cid in x["customer"]:
        e = f"customer{int(cid)}@example.com"
        u = rng.random()
        if u < 0.06:
            e = e.replace("@", "+" + rng.choice(["gifts", "shop", "2011"]) + "@")
        if rng.random() < 0.2:
            e = e.capitalize()
        emails.append(e)
    df = pd.DataFrame({"ID": [f"{100000000 + i}" for i in range(n)], "Purchase Point": "Main Website",
                       "Purchase Date": [t.strftime("%b %-d, %Y %-I:%M:%S %p") for t in x["t"]],
                       "Bill-to Name": "A. Customer", "Ship-to Name": "A. Customer",
                       "Grand Total (Base)": [money(v, "£") for v in x["total"]],
                       "Grand Total (Purchased)": [money(v, "£") for v in x["total"]],
                       "Status": status, "Customer Email": emails})
    df.to_csv(os.path.join(out, FILES["magento"]), index=False)
    return counts(x["customer"], np.isin(status, ["complete", "processing"]), x["total"])


def write_woocommerce(out, c, rng):
    n = len(c)
    status = rng.choice(["wc-completed", "wc-processing", "wc-refunded", "wc-cancelled", "wc-failed", "wc-on-hold", "wc-pending"],
                        n, p=[0.85, 0.04, 0.03, 0.03, 0.02, 0.01, 0.02])
    guest = rng.random(n) < 0.10
    secs = rng.integers(7 * 3600, 23 * 3600, n)
    when = c["time"] + pd.DateOffset(years=26) + pd.to_timedelta(secs, unit="s")
    user = np.where(guest, "0", c["customer_id"])
    df = pd.DataFrame({"Order ID": np.arange(1000, 1000 + n), "Order Date": when.dt.strftime("%Y-%m-%d %H:%M"),
                       "Order Status": status, "Customer User ID": user,
                       "Billing Email": [f"shopper{i}@example.org" for i in range(n)], "Order Currency": "USD",
                       "Order Total": c["dollar_value"].map(lambda v: f"{v:.2f}")})
    df.to_csv(os.path.join(out, FILES["woocommerce"]), index=False)
    return counts(c["customer_id"], np.isin(status, ["wc-completed", "wc-processing"]) & ~guest, c["dollar_value"])


def write_prestashop(out, g, rng):
    n = len(g)
    status = rng.choice(["Livré", "Paiement accepté", "Annulé", "Remboursé", "En attente du paiement par chèque"], n,
                        p=[0.80, 0.06, 0.05, 0.04, 0.05])
    total = np.round(np.exp(rng.normal(4.0, 0.8, n)), 2)
    total[rng.random(n) < 0.02] *= 40  # a few orders over a thousand euros
    secs = rng.integers(8 * 3600, 22 * 3600, n)
    when = g["date"] + pd.to_timedelta(secs, unit="s")
    # ICU's French locale: a narrow no-break space between thousands, a no-break space before €.
    fr = [money(v, "", thousands="\u202f", decimal=",") + "\u00a0€" for v in total]
    df = pd.DataFrame({"ID": np.arange(1, n + 1), "Référence": [f"XKBKNABJK{i % 1000:03d}" for i in range(n)],
                       "ID client": g["cust"], "Client": "C. Dupont", "Total": fr, "Paiement": "Carte bancaire",
                       "État": status, "Date": when.dt.strftime("%d/%m/%Y %H:%M:%S")})
    with open(os.path.join(out, FILES["prestashop"]), "w", encoding="utf-8-sig", newline="") as f:
        df.to_csv(f, sep=";", index=False)
    return counts(g["cust"], np.isin(status, ["Livré", "Paiement accepté"]), total)


def write_stripe(out, c, rng):
    n = len(c)
    currency = rng.choice(["usd", "eur", "jpy"], n, p=[0.8, 0.1, 0.1])
    status = rng.choice(["succeeded", "failed", "pending"], n, p=[0.93, 0.05, 0.02])
    refunded = (status == "succeeded") & (rng.random(n) < 0.05)
    no_customer = rng.random(n) < 0.03
    dollars = c["dollar_value"].to_numpy()
    # In each currency's minor unit: cents of USD and EUR (at 1.08 USD), whole yen (at 0.0067 USD).
    minor = np.where(currency == "usd", np.round(dollars * 100), np.where(currency == "eur", np.round(dollars / 1.08 * 100),
                                                                          np.round(dollars / 0.0067)))
    secs = rng.integers(0, 86400, n)
    created = ((c["time"] + pd.DateOffset(years=26) - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)) + secs
    df = pd.DataFrame({"id": [f"ch_{i:010d}" for i in range(n)], "amount": minor.astype(np.int64),
                       "amount_refunded": np.where(refunded, minor, 0).astype(np.int64), "currency": currency,
                       "customer": np.where(no_customer, "", "cus_" + c["customer_id"].str.zfill(8)),
                       "created": created, "status": status, "refunded": np.where(refunded, "true", "false")})
    df.to_csv(os.path.join(out, FILES["stripe"]), index=False)
    usd = np.where(currency == "usd", minor / 100, np.where(currency == "eur", minor / 100 * 1.08, minor * 0.0067))
    return counts(c["customer_id"], (status == "succeeded") & ~refunded & ~no_customer, usd)


def write_square(out, inv):
    x = inv[(inv["total"] >= 0) | inv["cancel"]].reset_index(drop=True)
    cid = x["customer"].astype("string")
    df = pd.DataFrame({"Date": x["t"].dt.strftime("%m/%d/%y"), "Time": x["t"].dt.strftime("%H:%M:%S"),
                       "Time Zone": "London", "Gross Sales": [money(v, "£") for v in x["total"]],
                       "Discounts": "£0.00", "Net Sales": [money(v, "£") for v in x["total"]], "Tax": "£0.00",
                       "Transaction ID": x["InvoiceNo"], "Card Brand": "Visa",
                       "Customer ID": ("SQ" + cid.str.zfill(6)).fillna(""),
                       "Event Type": np.where(x["cancel"], "Refund", "Payment")})
    df.to_csv(os.path.join(out, FILES["square"]), index=False)
    return counts(x["customer"], (x["customer"].notna() & ~x["cancel"]).to_numpy(), x["total"])


def write_accounting(out, inv):
    x = inv[inv["customer"].notna()].reset_index(drop=True)
    amount = [f"({abs(v):,.2f})" if v < 0 else f"{v:,.2f}" for v in x["total"]]
    df = pd.DataFrame({"Date": x["t"].dt.strftime("%d-%b-%Y"), "No.": x["InvoiceNo"],
                       "Customer": x["customer"].astype("string"), "Memo": "Gift-ware", "Amount": amount})
    df.to_csv(os.path.join(out, FILES["accounting"]), index=False)
    return counts(x["customer"], (x["total"] >= 0).to_numpy(), x["total"])


def write_lineitems(out, r, inv, rng):
    """Online Retail's lines of known customers' invoices (not cancellations, total >= 0), each
    repeating its invoice's date, a status drawn per invoice, and the invoice total."""
    good = inv[inv["customer"].notna() & ~inv["cancel"] & (inv["total"] >= 0)].reset_index(drop=True)
    good["status"] = rng.choice(["Completed", "Shipped", "Refunded", "Cancelled", "Awaiting Payment"], len(good),
                                p=[0.85, 0.05, 0.04, 0.03, 0.03])
    lines = r[["InvoiceNo", "StockCode", "Quantity", "UnitPrice"]].merge(good, on="InvoiceNo")
    when = lines["t"].dt.tz_localize("Europe/London", ambiguous=False, nonexistent="shift_forward")
    df = pd.DataFrame({"Order ID": lines["InvoiceNo"], "Order Date": when.dt.strftime("%a, %d %b %Y %H:%M:%S %z"),
                       "Order Status": lines["status"], "Customer ID": lines["customer"].astype("string"),
                       "Order Total": lines["total"].map(lambda v: f"{v:.2f}"), "Product SKU": lines["StockCode"],
                       "Product Qty": lines["Quantity"], "Product Unit Price": lines["UnitPrice"]})
    df.to_csv(os.path.join(out, FILES["lineitems"]), index=False)
    ok = good["status"].isin(["Completed", "Shipped"]).to_numpy()
    out_ = counts(good["customer"], ok, good["total"])
    out_["lines"] = len(df)
    return out_


def write_jsonl(out, r):
    x = r.assign(CustomerID=r["CustomerID"].astype("float"), InvoiceDate=pd.to_datetime(r["InvoiceDate"]))
    x.to_json(os.path.join(out, FILES["jsonl"]), orient="records", lines=True, date_format="iso", date_unit="ms",
              compression="gzip")
    return retail_expected(r)


def write_instacart(out, g):
    """The grocery log as Instacart writes its orders: per customer, the order number, the day
    of week and hour, and the days since the previous order (empty for the first, capped at 30)."""
    x = g.sort_values(["cust", "date"]).reset_index(drop=True)
    gap = x.groupby("cust")["date"].diff().dt.days
    df = pd.DataFrame({"order_id": np.arange(1, len(x) + 1), "user_id": x["cust"],
                       "order_number": x.groupby("cust").cumcount() + 1, "order_dow": (x["date"].dt.dayofweek + 1) % 7,
                       "order_hour_of_day": 10, "days_since_prior_order": gap.clip(upper=30).map(lambda v: "" if pd.isna(v) else f"{v:.1f}")})
    df.to_csv(os.path.join(out, FILES["instacart"]), index=False)
    return {"refused": True, "events_with_dates": len(x), "customers": int(x["cust"].nunique()),
            "gaps_capped_at_30": int((gap > 30).sum())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/data"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(13)
    r, c, g = retail(a.data_dir), cdnow(a.data_dir), grocery(a.data_dir)
    inv = by_invoice(r)
    exp = {
        "magento": write_magento(a.out, inv, rng),
        "woocommerce": write_woocommerce(a.out, c, rng),
        "prestashop": write_prestashop(a.out, g, rng),
        "stripe": write_stripe(a.out, c, rng),
        "square": write_square(a.out, inv),
        "accounting": write_accounting(a.out, inv),
        "lineitems": write_lineitems(a.out, r, inv, rng),
        "jsonl": write_jsonl(a.out, r),
        "instacart": write_instacart(a.out, g),
    }
    write_suite(a.out, "Round-3 export shapes (scripts/heldout_exports3.py)", MAPPINGS, FILES, NAMES, exp)


if __name__ == "__main__":
    main()
