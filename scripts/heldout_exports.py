#!/usr/bin/env python3
"""More exports a new user brings, round 2 (docs/benchmarks.md, "More exports a new user brings
(round 2)"): shop-system export shapes not tried by scripts/heldout_logs.py, made from the shared
data, each with the mapping a user writes from docs/operations.md, a suite file that leaves every
cutoff to the default rule, and expected.json: the purchases and customers an independent pandas
reading of the source data finds in each file (what `kairos eval` must report as events).

Usage: /usr/bin/python3 scripts/heldout_exports.py OUT_DIR [--data-dir ../shared/data] [--big-rows N]
then   bin/kairos eval --dataset csv --data OUT_DIR/retail2.csv --mapping OUT_DIR/retail2.yaml
       bin/kairos eval --suite-file OUT_DIR/exports.yaml --json > kairos.json
       /usr/bin/python3 scripts/peer_suite.py --suite-file OUT_DIR/exports.yaml > peers.json
--big-rows N (0 by default) also writes big.csv: N invoice lines resampled from Online Retail with
shifted customer ids, for ingest time and memory. The files are written to OUT_DIR; never commit them.
"""
import argparse
import datetime as dt
import gzip
import json
import os
import random

import numpy as np
import pandas as pd

MAPPINGS = {
    # Online Retail II as pandas writes it: Customer ID a float column ("17850.0") because of its
    # gaps, the same customer as "17850" in a second export; US dates without zero padding.
    "retail2": """header: true
customer: Customer ID
customer_normalize: [integer]
missing_customer: ignore
time: {column: InvoiceDate, layout: "1/2/2006 15:04", zone: Europe/London}
kind: {constant: purchase}
amount: Price
quantity: Quantity
negative_amount: ignore
item: StockCode
""",
    # A Windows shop system: Windows-1252, accented names (unmapped) and categories (mapped), "€".
    "cp1252": """header: true
delimiter: ";"
decimal: ","
encoding: windows-1252
customer: Kundennummer
time: {column: Datum, layout: "02.01.2006", zone: Europe/Berlin}
kind: {constant: purchase}
amount: Betrag
category: Warengruppe
""",
    # Shopify orders export: one row per line item, order fields only on the first; email ids.
    "shopify": """header: true
customer: Email
customer_normalize: [trim, lower]
time: {column: Paid at, layout: "2006-01-02 15:04:05 -0700", zone: Europe/Berlin}
kind:
  column: Financial Status
  values: {paid: purchase, partially_refunded: purchase}
  ignore: ["", refunded, pending, voided]
cancelled: Cancelled at
amount: Total
currency: {column: Currency, rates: {EUR: 1, USD: 0.925, JPY: 0.00625}}
""",
    # Epoch milliseconds (a JavaScript or Java backend).
    "epoch_ms": """header: true
customer: user_id
time: {column: ts, layout: unix_ms}
kind: {constant: purchase}
amount: value
""",
    # Excel serial dates (days since 1899-12-30), as a sheet saved without date formatting writes them.
    "excel": """header: true
customer: cust
time: {column: date, layout: excel}
kind: {constant: purchase}
""",
    # Date and time of day in two columns.
    "twocol": """header: true
customer: customer
time: {column: date, time_of_day: time, layout: "2006-01-02 15:04:05", zone: Europe/London}
kind: {constant: purchase}
amount: total
""",
    # TSV, CRLF.
    "tsv": """header: true
delimiter: "\\t"
customer: cust
time: {column: date, layout: "2006-01-02"}
kind: {constant: purchase}
""",
    # Twelve monthly CSV exports concatenated (a header before each), CRLF, descriptions quoted
    # with commas, quotes and line breaks, a trailing summary row; gzip-compressed.
    "messy": """header: true
customer: CustomerID
missing_customer: ignore
time: {column: InvoiceDate, layout: "2006-01-02 15:04:05", zone: Europe/London}
kind: {constant: purchase}
amount: UnitPrice
quantity: Quantity
negative_amount: ignore
""",
}
MAPPINGS["big"] = MAPPINGS["messy"]  # the large export has Online Retail's columns too

FILES = {"retail2": "retail2.csv", "cp1252": "cp1252.csv", "shopify": "shopify.csv", "epoch_ms": "epoch_ms.csv",
         "excel": "excel.csv", "twocol": "twocol.csv", "tsv": "tsv.tsv", "messy": "messy.csv.gz", "big": "big.csv"}

NAMES = {"retail2": "online-retail-ii-float-ids-us-dates", "cp1252": "windows-1252-semicolon",
         "shopify": "shopify-emails-status-currencies", "epoch_ms": "epoch-milliseconds",
         "excel": "excel-serial-dates", "twocol": "date-and-time-columns", "tsv": "tsv-crlf",
         "messy": "concatenated-quoted-newlines-gzip"}

FIRST_NAMES = ["Jürgen", "Zoë", "François", "Ångström", "Šárka", "Müller", "Renée", "Ñúñez", "Œdipe", "Smith"]
CATEGORIES = ["Bücher", "Spielwaren & Geschenke", "Café", "Küche", "Geschenkkarte 10 €", "Garten"]


def retail(data_dir):
    return pd.read_csv(os.path.join(data_dir, "online_retail_full/online_retail.csv.gz"),
                       dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": "Int64"}, keep_default_na=True)


def retail_expected(r):
    """Purchase lines Kairos should emit from an Online Retail line export read with quantity and
    negative_amount: ignore and missing_customer: ignore: lines of a known customer whose price and
    quantity are both >= 0 (cancellations are the negative quantities)."""
    ok = r["CustomerID"].notna() & (r["Quantity"] >= 0) & (r["UnitPrice"] >= 0)
    return {"events": int(ok.sum()), "customers": int(r.loc[ok, "CustomerID"].nunique())}


def us_date(t):
    return f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}"


def write_retail2(out, r, rng):
    ids = r["CustomerID"]
    # pandas float form for most rows, the integer form in the rows of "a second export" (30%).
    as_int = rng.random(len(r)) < 0.3
    cid = np.where(ids.isna(), "", np.where(as_int, ids.astype("string").fillna(""),
                                             ids.astype("float").map(lambda v: f"{v:.1f}")))
    t = pd.to_datetime(r["InvoiceDate"])
    df = pd.DataFrame({"Invoice": r["InvoiceNo"], "StockCode": r["StockCode"], "Description": r["Description"],
                       "Quantity": r["Quantity"], "InvoiceDate": [us_date(x) for x in t], "Price": r["UnitPrice"],
                       "Customer ID": cid, "Country": r["Country"]})
    df.to_csv(os.path.join(out, FILES["retail2"]), index=False)
    return retail_expected(r)


def cdnow(data_dir):
    c = pd.read_csv(os.path.join(data_dir, "cdnow/CDNOW_master.txt"), sep=r"\s+", dtype={"customer_id": str, "date": str})
    c["time"] = pd.to_datetime(c["date"], format="%Y%m%d")
    return c


def write_cp1252(out, c, rng):
    first = rng.choice(FIRST_NAMES, len(c))
    cat = rng.choice(CATEGORIES, len(c))
    t = c["time"] + pd.DateOffset(years=26)
    amt = c["dollar_value"].map(lambda v: f"{v:.2f}".replace(".", ","))
    with open(os.path.join(out, FILES["cp1252"]), "w", encoding="cp1252", newline="") as f:
        f.write("Kundennummer;Name;Datum;Betrag;Warengruppe\r\n")
        for row in zip(c["customer_id"], first, t.dt.strftime("%d.%m.%Y"), amt, cat):
            f.write(";".join(row) + "\r\n")
    return {"events": len(c), "customers": int(c["customer_id"].nunique()),
            "categories": sorted(set(cat))}


def write_shopify(out, c, rng):
    """One order per CDNOW purchase, 1–3 line items; CDNOW + 26 years in Berlin time."""
    n = len(c)
    status = rng.choice(["paid", "refunded", "partially_refunded", "pending", "voided"], n, p=[0.88, 0.04, 0.03, 0.03, 0.02])
    cancelled = (status == "voided") | ((status == "refunded") & (rng.random(n) < 0.5)) | ((status == "paid") & (rng.random(n) < 0.01))
    currency = rng.choice(["EUR", "USD", "JPY"], n, p=[0.85, 0.10, 0.05])
    rate = {"EUR": 1.0, "USD": 1 / 0.925, "JPY": 1 / 0.00625}
    secs = rng.integers(8 * 3600, 22 * 3600, n)
    when = (c["time"] + pd.DateOffset(years=26) + pd.to_timedelta(secs, unit="s")).dt.tz_localize("Europe/Berlin", ambiguous=False, nonexistent="shift_forward")
    rows = []
    for i in range(n):
        cust = c["customer_id"].iat[i]
        email = f"customer{int(cust)}@example.com"
        if rng.random() < 0.3:
            email = email.capitalize()
        if rng.random() < 0.2:
            email = email.upper()
        if rng.random() < 0.2:
            email += " "
        total = c["dollar_value"].iat[i] * rate[currency[i]]
        total = f"{total:.0f}" if currency[i] == "JPY" else f"{total:.2f}"
        paid_at = when.iat[i].strftime("%Y-%m-%d %H:%M:%S %z") if status[i] != "pending" else ""
        canc = (when.iat[i] + pd.Timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S %z") if cancelled[i] else ""
        items = int(rng.integers(1, 4))
        for k in range(items):
            name = rng.choice(['CD "Best of", Vol. 2', "Album, limited\nedition", "Single"])
            if k == 0:
                rows.append([f"#{1000 + i}", email, status[i], paid_at, "fulfilled", currency[i], total, total, "1", name, canc])
            else:  # Shopify leaves the order fields empty on the order's further line items
                rows.append([f"#{1000 + i}", email, "", "", "", "", "", "", "1", name, ""])
    df = pd.DataFrame(rows, columns=["Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Currency",
                                     "Subtotal", "Total", "Lineitem quantity", "Lineitem name", "Cancelled at"])
    df.to_csv(os.path.join(out, FILES["shopify"]), index=False)
    ok = np.isin(status, ["paid", "partially_refunded"]) & ~cancelled
    return {"events": int(ok.sum()), "customers": int(c.loc[ok, "customer_id"].nunique()),
            "eur_amount_sum": round(float(c.loc[ok, "dollar_value"].sum()), 2)}


def write_epoch_ms(out, c):
    t = c["time"] + pd.DateOffset(years=26)
    ms = (t - pd.Timestamp("1970-01-01")) // pd.Timedelta(milliseconds=1) + 13 * 3600 * 1000
    pd.DataFrame({"user_id": c["customer_id"], "ts": ms, "value": c["dollar_value"]}).to_csv(
        os.path.join(out, FILES["epoch_ms"]), index=False)
    return {"events": len(c), "customers": int(c["customer_id"].nunique())}


def grocery(data_dir):
    g = pd.read_csv(os.path.join(data_dir, "grocery_btydplus/groceryElog.csv"), dtype={"cust": str})
    g["date"] = pd.to_datetime(g["date"])
    return g


def write_excel(out, g):
    serial = (g["date"] - pd.Timestamp("1899-12-30")).dt.days
    pd.DataFrame({"cust": g["cust"], "date": serial}).to_csv(os.path.join(out, FILES["excel"]), index=False)
    return {"events": len(g), "customers": int(g["cust"].nunique())}


def write_twocol(out, r):
    ok = r["CustomerID"].notna() & (r["Quantity"] > 0) & ~r["InvoiceNo"].str.startswith("C")
    x = r[ok].assign(total=r["Quantity"] * r["UnitPrice"])
    inv = x.groupby(["CustomerID", "InvoiceNo"]).agg(t=("InvoiceDate", "min"), total=("total", "sum")).reset_index()
    t = pd.to_datetime(inv["t"])
    pd.DataFrame({"customer": inv["CustomerID"], "date": t.dt.strftime("%Y-%m-%d"), "time": t.dt.strftime("%H:%M:%S"),
                  "total": inv["total"].round(2)}).to_csv(os.path.join(out, FILES["twocol"]), index=False)
    return {"events": len(inv), "customers": int(inv["CustomerID"].nunique())}


def write_tsv(out, g):
    g[["cust"]].assign(date=g["date"].dt.strftime("%Y-%m-%d")).to_csv(
        os.path.join(out, FILES["tsv"]), sep="\t", index=False, lineterminator="\r\n")
    return {"events": len(g), "customers": int(g["cust"].nunique())}


def write_messy(out, r, rng):
    x = r.copy()
    # 1% of descriptions get a line break, 1% an embedded quote; pandas quotes them as RFC 4180 says.
    pick = rng.random(len(x))
    desc = x["Description"].fillna("")
    desc = desc.where(pick >= 0.01, desc + "\nsecond line")
    desc = desc.where((pick < 0.01) | (pick >= 0.02), desc + ' 12" vinyl, boxed')
    x["Description"] = desc
    month = pd.to_datetime(x["InvoiceDate"]).dt.to_period("M")
    with gzip.open(os.path.join(out, FILES["messy"]), "wt", newline="") as f:
        for _, part in x.groupby(month, sort=True):
            part.to_csv(f, index=False, lineterminator="\r\n")  # each monthly export has its header
        f.write(f"Total,,,{int(x['Quantity'].sum())},,,,\r\n")
    return retail_expected(r)


def write_big(out, r, rows, rng):
    """rows invoice lines drawn with replacement, in blocks of whole copies with customer ids
    shifted by 100000 per copy so that customers do not merge."""
    path = os.path.join(out, FILES["big"])
    total = {"events": 0, "customers": 0}
    with open(path, "w", newline="") as f:
        f.write("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n")
        done, copy = 0, 0
        while done < rows:
            n = min(len(r), rows - done)
            s = r.iloc[np.sort(rng.integers(0, len(r), n))].copy()
            s["CustomerID"] = s["CustomerID"] + 100000 * copy
            s.to_csv(f, index=False, header=False)
            e = retail_expected(s)
            total["events"] += e["events"]
            total["customers"] += e["customers"]
            done += n
            copy += 1
    return total


def write_suite(out, title, mappings, files, names, exp):
    """Write each mapping, expected.json and the suite file exports.yaml into out."""
    for k, m in mappings.items():
        with open(os.path.join(out, k + ".yaml"), "w") as f:
            f.write(m)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
    with open(os.path.join(out, "exports.yaml"), "w") as f:
        f.write(f"# {title}; every cutoff by the default rule.\nbuiltin: false\ndatasets:\n")
        for k, name in names.items():
            f.write(f"  - {{name: {name}, path: {files[k]}, format: csv, mapping: {k}.yaml}}\n")
    print(json.dumps(exp, indent=1), f"\nwritten {dt.datetime.now():%H:%M:%S}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/data"))
    ap.add_argument("--big-rows", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(11)
    random.seed(11)
    r, c, g = retail(a.data_dir), cdnow(a.data_dir), grocery(a.data_dir)
    exp = {
        "retail2": write_retail2(a.out, r, rng),
        "cp1252": write_cp1252(a.out, c, rng),
        "shopify": write_shopify(a.out, c, rng),
        "epoch_ms": write_epoch_ms(a.out, c),
        "excel": write_excel(a.out, g),
        "twocol": write_twocol(a.out, r),
        "tsv": write_tsv(a.out, g),
        "messy": write_messy(a.out, r, rng),
    }
    if a.big_rows:
        exp["big"] = write_big(a.out, r, a.big_rows, rng)
    write_suite(a.out, "Round-2 export shapes (scripts/heldout_exports.py)", MAPPINGS, FILES, NAMES, exp)


if __name__ == "__main__":
    main()
