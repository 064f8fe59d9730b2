#!/usr/bin/env python3
"""Compare personalisation rules offline on one federated model.

Reads the JSON lines TestExploreRules writes (client/train/sim/explore_pers_test.go:
per merchant its candidates' out-of-fold AUC and DeLong SE of the difference to
α = 1, and every model's P(buy within 30 days) on its own test customers) and
prints, per rule, personalised − local-only pooled AUC@30 per size bucket, the
pooled personalised AUC@30 and the share of merchants (with buyers and
non-buyers at the test cutoff) whose personalised AUC@30 ≥ local-only, then
the test noise of each merchant's (recalibrated global − local-only) AUC@30.

    python3 scripts/pers_rules.py /tmp/rules.jsonl
"""
import json
import math
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

BLENDS = [0, 0.25, 0.5, 0.75, 1]
BUCKETS = ["<100", "100-299", "300-999", ">=1000"]


def bucket(customers):
    if customers < 100:
        return "<100"
    if customers < 300:
        return "100-299"
    return "300-999" if customers < 1000 else ">=1000"


def prediction(rec, which):
    """which: 'local', 'global', or a candidate's index (α = BLENDS[i])."""
    p = rec["p30"]  # local, global, then the candidates (α = 0 alone without)
    if which == "local":
        return p[0]
    if which == "global":
        return p[1]
    return p[2 + which]


def argmax(cs):
    """The old rule: the highest out-of-fold AUC, the more global on a tie."""
    best = 0
    for i, c in enumerate(cs):
        if c["auc"] is not None and (cs[best]["auc"] is None or c["auc"] > cs[best]["auc"]):
            best = i
    return best


def local_unless(z, pick):
    """α = 1 unless a more global candidate's AUC exceeds it by > z SEs; of
    those, the most local ('local') or the highest AUC ('best')."""
    def rule(cs):
        a1 = cs[-1]["auc"]
        ok = [i for i, c in enumerate(cs[:-1])
              if c["auc"] is not None and a1 is not None and c["se"] > 0 and c["auc"] - a1 > z * c["se"]]
        if not ok:
            return len(cs) - 1
        return max(ok) if pick == "local" else max(ok, key=lambda i: (cs[i]["auc"], -i))
    return rule


def most_global_within(z):
    """The most global candidate not more than z SEs below α = 1."""
    def rule(cs):
        a1 = cs[-1]["auc"]
        for i, c in enumerate(cs):
            if c["auc"] is not None and a1 is not None and c["auc"] - a1 >= -z * c["se"]:
                return i
        return len(cs) - 1
    return rule


def choose(rule, small_global):
    """A merchant without candidates keeps its own model when it has a buyer
    (fewer customers than folds), else the global model; with small_global,
    every merchant with fewer than 10 training buyers keeps the global model
    (the old threshold)."""
    def f(rec):
        if small_global and rec["train_buyers"] < 10:
            return "global"
        cs = rec["candidates"]
        if not cs:
            return "local" if rec["train_buyers"] > 0 else "global"
        return rule(cs)
    return f


def evaluate(recs, pick, label):
    pooled = {b: ([], [], []) for b in BUCKETS}
    ge = compared = 0
    per = {b: [0, 0] for b in BUCKETS}
    for rec in recs:
        w = pick(rec)
        pl, pp, y = prediction(rec, "local"), prediction(rec, w), rec["y"]
        b = bucket(rec["customers"])
        for dst, src in zip(pooled[b], (pl, pp, y)):
            dst.extend(src)
        if 0 < sum(y) < len(y):
            compared += 1
            per[b][1] += 1
            if roc_auc_score(y, pp) >= roc_auc_score(y, pl):
                ge += 1
                per[b][0] += 1
    gains = [roc_auc_score(pooled[b][2], pooled[b][1]) - roc_auc_score(pooled[b][2], pooled[b][0]) for b in BUCKETS]
    allp = sum((pooled[b][1] for b in BUCKETS), [])
    ally = sum((pooled[b][2] for b in BUCKETS), [])
    print(f"| {label} | " + " | ".join(f"{g:+.4f}" for g in gains)
          + f" | {roc_auc_score(ally, allp):.4f} | {100 * ge / compared:.1f}% ({ge} of {compared}) | "
          + ", ".join(f"{per[b][0]}/{per[b][1]}" for b in BUCKETS) + " |")


def delong_paired(y, a, b):
    """DeLong's paired difference AUC(a) − AUC(b) and its SE, one stratum."""
    y, a, b = np.array(y, bool), np.array(a), np.array(b)

    def placements(s):
        pos, neg = s[y], s[~y]
        v10 = np.array([((neg < p).sum() + 0.5 * (neg == p).sum()) / len(neg) for p in pos])
        v01 = np.array([((pos > n).sum() + 0.5 * (pos == n).sum()) / len(pos) for n in neg])
        return v10, v01

    a10, a01 = placements(a)
    b10, b01 = placements(b)
    d10, d01 = a10 - b10, a01 - b01
    var = (d10.var(ddof=1) / len(d10) if len(d10) > 1 else 0) + (d01.var(ddof=1) / len(d01) if len(d01) > 1 else 0)
    return d10.mean(), math.sqrt(var)


def noise(recs):
    print("\n| bucket | merchants | test buyers (median) | SE of (recalibrated − local-only) AUC@30, median | mean difference | merchants whose SE exceeds the mean difference | recalibrated < local-only |")
    print("|---|---|---|---|---|---|---|")
    rows = {b: [] for b in BUCKETS}
    for rec in recs:
        y = rec["y"]
        if 0 < sum(y) < len(y):
            d, se = delong_paired(y, rec["p30"][2], rec["p30"][0])
            rows[bucket(rec["customers"])].append((sum(y), d, se))
    for b in BUCKETS:
        v = rows[b]
        mean = float(np.mean([x[1] for x in v]))
        print(f"| `{b}` | {len(v)} | {int(np.median([x[0] for x in v]))} | {np.median([x[2] for x in v]):.3f} | {mean:+.3f} | "
              f"{sum(x[2] > abs(mean) for x in v)} | {sum(x[1] < 0 for x in v)} |")


def main():
    recs = [json.loads(line) for line in open(sys.argv[1])]
    print("| rule | `<100` | `100-299` | `300-999` | `>=1000` | pooled personalised | pers ≥ local | per bucket |")
    print("|---|---|---|---|---|---|---|---|")
    evaluate(recs, choose(argmax, True), "highest out-of-fold AUC, < 10 buyers global (the old rule)")
    evaluate(recs, choose(lambda cs: len(cs) - 1, True), "always local-only, < 10 buyers global")
    evaluate(recs, choose(lambda cs: 0, True), "always recalibrated global, < 10 buyers global")
    for z in (1, 1.645):
        evaluate(recs, choose(most_global_within(z), True), f"most global within {z} SE of α = 1, < 10 buyers global")
    for z in (1, 1.282, 1.645, 1.96, 2.241):
        for pick in ("local", "best"):
            evaluate(recs, choose(local_unless(z, pick), False), f"α = 1 unless better by {z} SE, the {'most local' if pick == 'local' else 'highest'} of those")
    evaluate(recs, choose(local_unless(1.645, "local"), True), "α = 1 unless better by 1.645 SE, the most local; < 10 buyers global")
    noise(recs)


if __name__ == "__main__":
    main()
