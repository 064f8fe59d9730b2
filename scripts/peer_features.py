#!/usr/bin/env python3
"""Peer baseline for `kairos bench`: the same job done the way a data scientist would in
pandas + scikit-learn. Reads an event log written by `kairos gen`, builds point-in-time
features at monthly cutoffs (events strictly before each cutoff), labels (purchase within
30 days), and fits a logistic regression. Prints one JSON object with the timings.

Usage: python3 scripts/peer_features.py LOG.csv
"""
import json
import resource
import sys
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

WINDOWS = [1, 3, 7, 14, 30, 90, 180, 365]
DAY = 86400


def features_at(ev, cutoff):
    past = ev[ev["time"] < cutoff]
    buys = past[past["kind"] == "purchase"]
    g = buys.groupby("customer")["time"]
    f = pd.DataFrame({
        "n_buy": g.size(),
        "first": g.min(),
        "last": g.max(),
        "spend": buys.groupby("customer")["amount"].sum(),
    })
    for w in WINDOWS:
        recent = buys[buys["time"] >= cutoff - w * DAY]
        f[f"buy_{w}d"] = recent.groupby("customer").size()
    gaps = buys.sort_values(["customer", "time"]).groupby("customer")["time"].diff() / DAY
    gs = gaps.groupby(buys.sort_values(["customer", "time"])["customer"])
    f["gap_mean"] = gs.mean()
    f["gap_std"] = gs.std()
    f["gap_last"] = gs.last()
    for kind in ("view", "cart", "favorite"):
        k = past[past["kind"] == kind]
        f[f"{kind}_n"] = k.groupby("customer").size()
        f[f"{kind}_30d"] = k[k["time"] >= cutoff - 30 * DAY].groupby("customer").size()
    seen = past.groupby("customer")["time"].agg(["min"]).rename(columns={"min": "first_seen"})
    f = seen.join(f, how="left")
    f["recency"] = (cutoff - f["last"]) / DAY
    f["tenure"] = (cutoff - f["first_seen"]) / DAY
    f["overdue"] = f["recency"] - f["gap_mean"]
    f = f.drop(columns=["first", "last", "first_seen"]).fillna(0.0)
    future = ev[(ev["kind"] == "purchase") & (ev["time"] >= cutoff) & (ev["time"] < cutoff + 30 * DAY)]
    f["label"] = f.index.isin(future["customer"].unique()).astype(int)
    return f


def main():
    path = sys.argv[1]
    t0 = time.perf_counter()
    ev = pd.read_csv(path, usecols=["customer", "time", "kind", "amount"],
                     dtype={"customer": "string", "time": "int64", "kind": "category", "amount": "float64"})
    ev["amount"] = ev["amount"].fillna(0.0)
    t_read = time.perf_counter()
    lo, hi = int(ev["time"].min()), int(ev["time"].max())
    cutoffs = list(range(lo + 60 * DAY, hi - 30 * DAY, 30 * DAY))
    frames = [features_at(ev, c) for c in cutoffs]
    data = pd.concat(frames)
    t_feat = time.perf_counter()
    y = data.pop("label").to_numpy()
    X = np.log1p(np.clip(data.to_numpy(dtype=float), 0, None))
    LogisticRegression(max_iter=200).fit(X, y)
    t_fit = time.perf_counter()
    print(json.dumps({
        "events": int(len(ev)),
        "rows": int(len(y)),
        "cutoffs": len(cutoffs),
        "read_seconds": t_read - t0,
        "features_seconds": t_feat - t_read,
        "ingest_features_events_per_second": len(ev) / (t_feat - t0),
        "fit_seconds": t_fit - t_feat,
        "fit_examples_per_second": len(y) / (t_fit - t_feat),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
