#!/usr/bin/env python3
"""Held-out-style purchase logs a new user brings (docs/benchmarks.md, "Held-out logs a new user
brings"): each a shape a shop exports, made by transforming the shared data (CDNOW, grocery,
Online Retail full, Taobao) or drawn here, with the column mapping a user writes from
docs/operations.md and a suite file that leaves every cutoff to the default rule.

Usage: /usr/bin/python3 scripts/heldout_logs.py OUT_DIR [--data-dir ../shared/data]
then   bin/kairos eval --suite-file OUT_DIR/heldout.yaml --json > kairos.json
       /usr/bin/python3 scripts/peer_suite.py --suite-file OUT_DIR/heldout.yaml > peers.json
       /usr/bin/python3 scripts/peer_suite.py --table kairos.json peers.json
The logs are written to OUT_DIR (about 60 MB); never commit them.
"""
import argparse
import csv
import datetime as dt
import gzip
import os
import random
from zoneinfo import ZoneInfo

import numpy as np

MAPPINGS = {
    "iso": """header: true
customer: customer
time: {column: created_at, layout: "2006-01-02T15:04:05Z07:00"}
kind: {constant: purchase}
amount: total_eur
""",
    "de": """header: true
delimiter: ";"
decimal: ","
customer: Kundennummer
time: {column: Bestelldatum, layout: "02.01.2006", zone: Europe/Berlin}
kind: {constant: purchase}
amount: Betrag
""",
    "returns": """header: true
customer: customer_id
time: {column: order_date, layout: "2006-01-02 15:04:05", zone: Europe/London}
kind: {constant: purchase}
amount: line_total
item: sku
negative_amount: ignore
""",
    "short5": """header: true
customer: customer_id
time: {column: date, layout: "2006-01-02"}
kind: {constant: purchase}
amount: amount
""",
    "small300": """header: true
customer: cust
time: {column: date, layout: "2006-01-02"}
kind: {constant: purchase}
""",
    "season": """header: true
customer: buyer
time: {column: paid_at, layout: "2006-01-02T15:04:05Z07:00"}
kind: {constant: purchase}
amount: gmv
""",
    "taobao_buy": """customer: 1
time: {column: 5, layout: unix, zone: Asia/Shanghai}
kind: {column: 4, values: {buy: purchase}}
item: 2
category: 3
""",
}

SUITE = """# Held-out-style logs (scripts/heldout_logs.py); every cutoff by the default rule.
builtin: false
datasets:
  - {name: iso-offsets-several-a-day, path: iso.csv, format: csv, mapping: iso.yaml}
  - {name: de-semicolon-decimal-comma, path: de.csv, format: csv, mapping: de.yaml}
  - {name: order-lines-negative-returns, path: returns.csv, format: csv, mapping: returns.yaml}
  - {name: cdnow-5-months, path: short5.csv, format: csv, mapping: short5.yaml}
  - {name: grocery-300-customers, path: small300.csv, format: csv, mapping: small300.yaml}
  - {name: marketplace-christmas-77pct-once, path: season.csv, format: csv, mapping: season.yaml}
  - {name: taobao-buys-9-days, path: taobao_buy.csv, format: csv, mapping: taobao_buy.yaml}
"""


def cdnow(data):
    with open(f"{data}/cdnow/CDNOW_master.txt") as f:
        next(f)
        return [(c, d, float(v)) for c, d, _, v in (line.split() for line in f)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data-dir", default="../shared/data")
    a = ap.parse_args()
    data, out = a.data_dir, a.out
    os.makedirs(out, exist_ok=True)
    random.seed(11)
    cd = cdnow(data)
    # ISO-8601 with the Berlin offset, 20% of the orders split in two on the same day (CDNOW + 26 years).
    berlin = ZoneInfo("Europe/Berlin")
    with open(f"{out}/iso.csv", "w") as f:
        f.write("order_ref,customer,created_at,total_eur\n")
        for i, (c, d, v) in enumerate(cd):
            k = 1 if random.random() < 0.8 else 2
            for j in range(k):
                t = dt.datetime(int(d[:4]) + 26, int(d[4:6]), int(d[6:]), random.randint(7, 22), random.randint(0, 59),
                                random.randint(0, 59), tzinfo=berlin)
                f.write(f"R{i}-{j},u{c},{t.isoformat()},{v / k:.2f}\n")
    # Semicolons, German header and dates, amounts with a decimal comma (grocery + lognormal baskets).
    with open(f"{data}/grocery_btydplus/groceryElog.csv") as f, open(f"{out}/de.csv", "w") as g:
        r = csv.reader(f)
        next(r)
        g.write("Kundennummer;Bestelldatum;Betrag\n")
        for c, d in r:
            y, m, dd = d.split("-")
            g.write(f"K{c};{dd}.{m}.{y};{('%.2f' % random.lognormvariate(3.5, 0.6)).replace('.', ',')}\n")
    # One row per order line, returns as negative line totals, no status column (Online Retail full).
    with gzip.open(f"{data}/online_retail_full/online_retail.csv.gz", "rt") as f, open(f"{out}/returns.csv", "w") as g:
        r = csv.reader(f)
        next(r)
        g.write("order_id,line,customer_id,order_date,sku,qty,line_total\n")
        for i, (inv, sku, _, q, t, p, cust, _) in enumerate(r):
            if cust:
                g.write(f"{inv},{i},{cust},{t},{sku},{q},{int(q) * float(p):.2f}\n")
    # Five months of CDNOW.
    with open(f"{out}/short5.csv", "w") as g:
        g.write("customer_id,date,amount\n")
        for c, d, v in cd:
            if d < "19970601":
                g.write(f"{c},{d[:4]}-{d[4:6]}-{d[6:]},{v:.2f}\n")
    # 300 grocery customers.
    rows = list(csv.reader(open(f"{data}/grocery_btydplus/groceryElog.csv")))[1:]
    keep = set(random.sample(sorted({c for c, _ in rows}), 300))
    with open(f"{out}/small300.csv", "w") as g:
        g.write("cust,date\n")
        for c, d in rows:
            if c in keep:
                g.write(f"{c},{d}\n")
    # Taobao's buy events: nine days.
    with open(f"{data}/taobao/UserBehavior_head84k.csv") as f, open(f"{out}/taobao_buy.csv", "w") as g:
        g.writelines(line for line in f if ",buy," in line)
    season(out)
    for name, m in MAPPINGS.items():
        open(f"{out}/{name}.yaml", "w").write(m)
    open(f"{out}/heldout.yaml", "w").write(SUITE)


def season(out):
    """A marketplace: 30,000 buyers over 2023-2024, 4x the intensity from 15 Nov to 24 Dec, 70% buy
    once by construction (77% in the log); repeaters buy at gamma-distributed rates until an
    exponential lifetime ends."""
    rng = np.random.default_rng(5)
    start, days = dt.datetime(2023, 1, 1), 730

    def intensity(d):
        t = start + dt.timedelta(days=float(d))
        return 4.0 if (11, 15) <= (t.month, t.day) <= (12, 24) else 1.0

    w = np.array([intensity(d) for d in range(days)])
    w /= w.sum()
    with open(f"{out}/season.csv", "w") as f:
        f.write("buyer,paid_at,gmv\n")
        for c in range(30000):
            d0 = rng.choice(days, p=w) + rng.random()
            ts = [d0]
            if rng.random() < 0.3:
                lam, life, t = rng.gamma(0.8, 1 / 25.0), rng.exponential(300), d0
                while True:
                    t += rng.exponential(1 / (lam * 4))
                    if t >= days or t > d0 + life:
                        break
                    if rng.random() < intensity(t) / 4:
                        ts.append(t)
            for t in ts:
                f.write(f"b{c},{start + dt.timedelta(days=float(t)):%Y-%m-%dT%H:%M:%SZ},{rng.lognormal(3.2, 0.8):.2f}\n")


if __name__ == "__main__":
    main()
