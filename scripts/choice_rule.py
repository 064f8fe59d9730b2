#!/usr/bin/python3
"""The choice rule of docs/benchmarks.md, "A nonlinear score across thirteen validation splits".

For every data set, from the inner validation's test predictions (kairos eval --suite-file
*-inner.yaml with KAIROS_SCRATCH_DUMP=DIR: DIR/<data set>--<model>.tsv, lines customer, P(buy within
30 days), bought), keep the nonlinear model only if its AUC@30 beats the linear one's by more than
one DeLong standard error of the paired difference (DeLong, DeLong & Clarke-Pearson 1988; one row
per customer). Then the rule's result on the validation splits is the chosen model's row of the
validation runs' JSON.

  choice_rule.py DIR LINEAR NONLINEAR [--strict]

--strict is the rule `kairos eval --model auto` applies (docs/benchmarks.md, "A model chosen on the
merchant's own data"): keep the nonlinear model only if its AUC@30 gain exceeds 1.645 DeLong
standard errors and its average precision (PR-AUC@30) is not lower and its Brier@30 not higher.
"""
import json
import sys

import numpy as np


def midrank(x):
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = len(x)
    r = np.empty(n)
    i = 0
    while i < n:
        j = i
        while j < n and xs[j] == xs[i]:
            j += 1
        r[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(n)
    out[order] = r
    return out


def delong(a, b, y):
    """AUC of a, of b, and the standard error of AUC(a) − AUC(b) on labels y."""
    pos, neg = y == 1, y == 0
    m, n = pos.sum(), neg.sum()
    aucs, v10s, v01s = [], [], []
    for s in (a, b):
        tx, ty, tz = midrank(s[pos]), midrank(s[neg]), midrank(s)
        auc = (tz[pos].sum() - m * (m + 1) / 2) / (m * n)
        v10s.append((tz[pos] - tx) / n)      # buyer placements
        v01s.append(1 - (tz[neg] - ty) / m)  # non-buyer placements
        aucs.append(auc)
    d10 = v10s[0] - v10s[1]
    d01 = v01s[0] - v01s[1]
    var = d10.var(ddof=1) / m + d01.var(ddof=1) / n
    return aucs[0], aucs[1], float(np.sqrt(var))


def read(path):
    cust, p, y = [], [], []
    for line in open(path):
        c, q, b = line.rstrip("\n").split("\t")
        cust.append(c)
        p.append(float(q))
        y.append(int(b))
    return cust, np.array(p), np.array(y)


def average_precision(p, y):
    """scikit-learn's average_precision_score: Σ (Rₙ − Rₙ₋₁)·Pₙ over distinct thresholds."""
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    last = np.r_[np.nonzero(np.diff(ps))[0], len(ps) - 1]  # the end of every tie group
    tp = np.cumsum(ys)[last]
    precision = tp / (last + 1)
    recall = tp / ys.sum()
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def main():
    d, lin, nl = sys.argv[1], sys.argv[2], sys.argv[3]
    strict = "--strict" in sys.argv[4:]
    names = ["cdnow", "online-retail-full", "grocery", "iso-offsets-several-a-day",
             "de-semicolon-decimal-comma", "order-lines-negative-returns", "cdnow-5-months",
             "grocery-300-customers", "marketplace-christmas-77pct-once", "subscription",
             "one-timers", "b2b-weekdays", "weekly-delivery"]
    choice = {}
    for n in names:
        try:
            ca, a, ya = read(f"{d}/{n}--{lin}.tsv")
            cb, b, yb = read(f"{d}/{n}--{nl}.tsv")
        except FileNotFoundError:
            continue
        assert ca == cb and (ya == yb).all(), n
        auc_nl, auc_lin, se = delong(b, a, ya)
        if strict:
            dpr = average_precision(b, ya) - average_precision(a, ya)
            dbr = float(((b - ya) ** 2).mean() - ((a - ya) ** 2).mean())
            keep = auc_nl - auc_lin > 1.645 * se and dpr >= 0 and dbr <= 0
        else:
            dpr = dbr = float("nan")
            keep = auc_nl - auc_lin > se
        choice[n] = nl if keep else lin
        print(f"{n:34s} inner AUC@30 {lin} {auc_lin:.4f} {nl} {auc_nl:.4f} diff {auc_nl - auc_lin:+.4f} "
              f"SE {se:.4f} PR {dpr:+.4f} Brier {dbr:+.5f} -> {choice[n]}", file=sys.stderr)
    print(json.dumps(choice))


if __name__ == "__main__":
    main()
