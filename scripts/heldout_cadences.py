#!/usr/bin/env python3
"""Held-out purchase logs with cadences the suite does not have (docs/benchmarks.md, "Cadences the
suite does not have"): drawn here from stated processes, never from the suite's data, each with the
mapping a user writes from docs/operations.md and a suite file that leaves every cutoff to the
default rule.

  subscription   a subscription shop: every customer renews on a cycle of its own (7, 14, 30 or
                 60 days, jitter of a day or two), churns after each renewal with a probability
                 of its own, and a fifth of them also buy add-ons at random
  one-timers     a marketplace where 97% of customers buy once (Olist-like): acquisition grows
                 over two years, the few repeat buyers buy at gamma-distributed rates
  b2b-weekdays   600 business accounts ordering on weekdays in office hours, rates of one order
                 per 10 to 60 days, no orders over the Christmas close, accounts lost at random
  weekly-delivery a grocery delivery service: each customer orders on its own weekday every one
                 or two weeks, skips weeks, and churns

Usage: /usr/bin/python3 scripts/heldout_cadences.py OUT_DIR [--seed 7]
then   bin/kairos eval --suite-file OUT_DIR/cadences.yaml --json > kairos.json
       /usr/bin/python3 scripts/peer_suite.py --suite-file OUT_DIR/cadences.yaml > peers.json
       /usr/bin/python3 scripts/peer_suite.py --table kairos.json peers.json
The logs (about 15 MB) are written to OUT_DIR; never commit them.
"""
import argparse
import csv
import datetime as dt
import os

import numpy as np

START = dt.datetime(2023, 1, 1)
END = dt.datetime(2024, 12, 31, 23, 59)

MAPPING = """header: true
customer: customer
time: {column: ordered_at, layout: "2006-01-02 15:04:05"}
kind: {constant: purchase}
amount: amount
"""

SUITE = """builtin: false
datasets:
  - {name: subscription, path: subscription.csv, format: csv, mapping: cadence.yaml}
  - {name: one-timers, path: one-timers.csv, format: csv, mapping: cadence.yaml}
  - {name: b2b-weekdays, path: b2b-weekdays.csv, format: csv, mapping: cadence.yaml}
  - {name: weekly-delivery, path: weekly-delivery.csv, format: csv, mapping: cadence.yaml}
"""


def at(day, rng, hours=(7, 23)):
    """A purchase time on day (days after START) at a random minute within hours."""
    h = rng.integers(hours[0], hours[1])
    return START + dt.timedelta(days=int(day), hours=int(h), minutes=int(rng.integers(0, 60)))


def subscription(rng):
    rows = []
    for c in range(8000):
        cycle = rng.choice([7, 14, 30, 30, 30, 60])
        churn = rng.beta(2, 20)
        day = rng.uniform(0, 700)
        price = {7: 12, 14: 22, 30: 39, 60: 69}[cycle]
        while day < 730:
            rows.append((f"S{c:05d}", at(day, rng), price))
            if rng.random() < churn:
                break
            day += cycle + rng.normal(0, 1.5)
        if rng.random() < 0.2:
            d = rng.uniform(0, 730)
            while d < 730:
                rows.append((f"S{c:05d}", at(d, rng), round(rng.lognormal(2.5, 0.6), 2)))
                d += rng.exponential(90)
    return rows


def one_timers(rng):
    rows = []
    n = 60000
    # acquisition grows linearly: density of the first purchase day proportional to (1 + day/365)
    u = rng.random(n)
    first = 365 * (np.sqrt(1 + 8 * u) - 1)  # inverse CDF of (1 + x/365) on [0, 730]
    for c in range(n):
        day = first[c]
        rows.append((f"O{c:05d}", at(day, rng, (0, 24)), round(rng.lognormal(4.5, 0.9), 2)))
        if rng.random() < 0.03:
            rate = rng.gamma(0.8, 1 / 40)
            while True:
                day += rng.exponential(1 / max(rate, 1e-4))
                if day >= 730 or rng.random() < 0.15:
                    break
                rows.append((f"O{c:05d}", at(day, rng, (0, 24)), round(rng.lognormal(4.5, 0.9), 2)))
    return rows


def closed(d):
    t = START + dt.timedelta(days=int(d))
    return t.weekday() >= 5 or (t.month == 12 and t.day >= 24) or (t.month == 1 and t.day <= 2)


def b2b(rng):
    rows = []
    for c in range(600):
        gap = rng.uniform(10, 60)
        life = rng.exponential(900)
        day = rng.uniform(0, 200)
        end = min(730, day + life)
        size = rng.lognormal(7, 1)
        while day < end:
            d = day
            while closed(d):
                d += 1
            if d < 730:
                rows.append((f"B{c:04d}", at(d, rng, (8, 18)), round(size * rng.lognormal(0, 0.3), 2)))
            day = d + rng.gamma(4, gap / 4)
    return rows


def weekly(rng):
    rows = []
    for c in range(5000):
        every = rng.choice([7, 7, 14])
        skip = rng.beta(2, 6)
        churn = rng.beta(1.5, 40)
        day = rng.uniform(0, 500)
        day -= day % 7
        day += rng.integers(0, 7)
        while day < 730:
            if rng.random() > skip:
                rows.append((f"W{c:04d}", at(day, rng, (6, 22)), round(rng.lognormal(4, 0.4), 2)))
            if rng.random() < churn:
                break
            day += every
    return rows


def write(out, name, rows):
    rows.sort(key=lambda r: r[1])
    with open(os.path.join(out, name + ".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer", "ordered_at", "amount"])
        for cust, t, amount in rows:
            if t <= END:
                w.writerow([cust, t.strftime("%Y-%m-%d %H:%M:%S"), f"{amount:.2f}"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    write(args.out, "subscription", subscription(rng))
    write(args.out, "one-timers", one_timers(rng))
    write(args.out, "b2b-weekdays", b2b(rng))
    write(args.out, "weekly-delivery", weekly(rng))
    with open(os.path.join(args.out, "cadence.yaml"), "w") as f:
        f.write(MAPPING)
    with open(os.path.join(args.out, "cadences.yaml"), "w") as f:
        f.write(SUITE)


if __name__ == "__main__":
    main()
