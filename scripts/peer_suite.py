#!/usr/bin/env python3
"""Peers of `kairos eval --suite`: the suite's data sets done the way a data scientist would
in pandas + scikit-learn 1.2, on exactly the suite's protocols (30-day purchase label; features
strictly before each cutoff; the customers scored at a cutoff are those with a purchase before
it; training label windows end before the test cutoff). Methods:

  logistic   LogisticRegression on standardised log1p of RFM + gap features
  hist_gbdt  HistGradientBoostingClassifier on the same features (random_state 0)
  recency    minus days since the last purchase (a check: it must equal Kairos's recency)

Prints one JSON object of the shape `kairos eval --suite --json` prints:
{"datasets":[{"name":..,"methods":[{"name":"logistic","auc":{"7":..,"30":..},"pr_auc":{"30":..},
"brier":{"30":..},"ece":{"30":..}},...]}]}. AUC@7 ranks by the 30-day model's probability
against 7-day labels, as Kairos does for its baselines. ECE: ten equal-width bins, bin
k = floor(10 p) (p = 1 in the last), sum over bins of n_k/N |mean p - observed| (metrics.ECE).

Usage: /usr/bin/python3 scripts/peer_suite.py [--data-dir ../shared/data] [--only NAME] > peers.json
(Debian's python3-sklearn 1.2.1 and python3-pandas 1.5.3.)

       /usr/bin/python3 scripts/peer_suite.py --suite-file mine.yaml > peers.json
runs the data sets of a `kairos eval --suite-file` file too (builtin: false leaves the built-in
ones out). A csv data set (delimited text, or JSON Lines when its first byte is "{", as Kairos
reads it) is read through its column mapping (header, delimiter, encoding, decimal,
thousands, customer and customer_normalize (trim, integer, lower, plus_tag), missing_customer_values,
time column/time_of_day/layout (Go, unix, unix_ms, excel, days with its epoch)/zone, kind column/values/ignore or constant,
cancelled (a boolean's false is no cancellation), amount with currency_symbol and accounting_negatives,
× quantity × currency rate ÷ amount_unit (cents, minor), order (the first line of each order); the purchase
rows only, a row whose time or amount cannot be read or whose amount is negative dropped), and cutoffs the file leaves out
follow Kairos's default rule (test cutoff = the day after the last event's UTC day - 30 days;
training cutoffs 30, 60, ... days before it, at most 6, none before the first day + 30), written
here from docs/operations.md, not taken from Kairos, so that --table can check the two agree.

       /usr/bin/python3 scripts/peer_suite.py --table kairos.json peers.json
prints the side-by-side markdown table of docs/benchmarks.md from `kairos eval --suite --json`
and this script's output: every method of both, and the difference of Kairos's default model
(hazard) to the best peer in each column (for Brier and ECE, lower is better).
"""
import argparse
import json
import re
import sys
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

DAY = pd.Timedelta(days=1)
HORIZON = 30

# The built-in suite of model/suite.Builtin().
SUITE = [
    {"name": "cdnow", "path": "cdnow/CDNOW_master.txt", "format": "cdnow", "test": "1998-03-01",
     "train": ["1997-07-01", "1997-09-01", "1997-11-01", "1998-01-01"]},
    {"name": "online-retail-full", "path": "online_retail_full/online_retail.csv.gz", "format": "online-retail",
     "test": "2011-11-09", "train": ["2011-05-01", "2011-06-01", "2011-07-01", "2011-08-01", "2011-09-01", "2011-10-01"]},
    {"name": "grocery", "path": "grocery_btydplus/groceryElog.csv", "format": "grocery", "test": "2007-12-01",
     "train": ["2007-03-01", "2007-05-01", "2007-07-01", "2007-09-01", "2007-10-01"]},
]


def read(path, fmt):
    """Purchases as a frame (customer, time, amount)."""
    if fmt == "cdnow":
        ev = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
        return pd.DataFrame({"customer": ev["customer_id"], "time": pd.to_datetime(ev["date"], format="%Y%m%d"),
                             "amount": ev["dollar_value"].astype(float)})
    if fmt == "online-retail":
        # One purchase per non-cancelled invoice of a known customer, its lines summed.
        ev = pd.read_csv(path, dtype={"InvoiceNo": str, "CustomerID": str})
        ev = ev[ev["CustomerID"].notna() & ~ev["InvoiceNo"].str.startswith("C")]
        ev = ev[(ev["Quantity"] >= 0) & (ev["UnitPrice"] >= 0)]
        ev = ev.assign(amount=ev["Quantity"] * ev["UnitPrice"], time=pd.to_datetime(ev["InvoiceDate"]))
        inv = ev.groupby(["CustomerID", "InvoiceNo"]).agg(time=("time", "min"), amount=("amount", "sum")).reset_index()
        return pd.DataFrame({"customer": inv["CustomerID"], "time": inv["time"], "amount": inv["amount"]})
    if fmt == "grocery":
        ev = pd.read_csv(path, dtype={"cust": str})
        return pd.DataFrame({"customer": ev["cust"], "time": pd.to_datetime(ev["date"]), "amount": 0.0})
    raise ValueError(f"unknown format {fmt}")


# Go time layout elements a mapping uses, as strptime directives (longest first).
GO_LAYOUT = [("2006", "%Y"), ("Z07:00", "%z"), ("-07:00", "%z"), ("-0700", "%z"), ("January", "%B"), ("Jan", "%b"),
             ("Monday", "%A"), ("Mon", "%a"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("04", "%M"), ("05", "%S"),
             ("06", "%y"), ("PM", "%p"), ("03", "%I"), (".000000", ".%f"), (".000", ".%f"),
             ("1", "%m"), ("2", "%d"), ("3", "%I")]  # 1, 2 and 3: month, day and 12-hour unpadded

# A mapping's encoding names as Python codecs.
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "windows-1252": "cp1252", "cp1252": "cp1252", "win-1252": "cp1252",
             "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1", "iso8859-1": "latin-1"}


def strptime_format(layout):
    out, i = "", 0
    while i < len(layout):
        for go, py in GO_LAYOUT:
            if layout.startswith(go, i):
                out, i = out + py, i + len(go)
                break
        else:
            out, i = out + layout[i].replace("%", "%%"), i + 1
    return out


def load_yaml(path):
    import yaml
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def open_export(path, mode="rb", **kw):
    """The file at path, decompressed when its first bytes are gzip's (as Kairos recognises it)."""
    import gzip
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, mode, **kw) if gz else open(path, mode, **kw)


def is_json_lines(path):
    """Kairos reads a mapped export as JSON Lines when its first byte after a byte-order mark and
    blanks is "{"."""
    with open_export(path) as f:
        return f.read(4096).lstrip(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1] == b"{"


def read_json_lines(path):
    """A JSON Lines export as a frame of strings: a string as it is, a number as written, an
    absent key or null as "", any other value (true, an object) None (the row is bad where the
    mapping reads that key)."""
    rows = []
    with open_export(path, "rt", encoding="utf-8-sig") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line, parse_float=str, parse_int=str)
                rows.append({k: "" if v is None else v if isinstance(v, str) else None for k, v in obj.items()})
    raw = pd.DataFrame(rows)
    absent = raw.isna() & ~pd.DataFrame([{k: k in r for k in raw.columns} for r in rows]).to_numpy()
    return raw.mask(absent, "")


def day_numbers(tc, epoch, lo, hi):
    """Times of a column of (fractional) day numbers since epoch's midnight; outside [lo, hi), NaT."""
    v = pd.to_numeric(tc.where(tc.str.match(r"^\d{1,7}(\.\d*)?$"), "nan"), errors="coerce")
    v = v.where((v >= lo) & (v < hi))
    return pd.Timestamp(epoch) + pd.to_timedelta((v * 86400).round(), unit="s")


def names_a_column(m):
    """Whether a mapping names a column (a YAML string, not an integer index): Kairos's default
    for header then is true, since a name can only be found in a header line."""
    refs = [m.get(k) for k in ("customer", "amount", "quantity", "item", "category", "cancelled", "order")]
    for k, sub in (("time", ("column", "time_of_day")), ("kind", ("column",)), ("currency", ("column",))):
        if isinstance(m.get(k), dict):
            refs += [m[k].get(x) for x in sub]
    return any(isinstance(r, str) for r in refs)


def read_mapped(path, mapping_path):
    """Purchases of a delimited or JSON Lines file described by a Kairos column mapping."""
    import yaml
    m = load_yaml(mapping_path)
    header = bool(m.get("header", names_a_column(m)))
    if is_json_lines(path):
        raw = read_json_lines(path)
    else:
        raw = pd.read_csv(path, sep=m.get("delimiter", ","), header=0 if header else None, dtype=str,
                          keep_default_na=False, compression="infer", encoding=ENCODINGS[str(m.get("encoding", "utf-8")).lower()])
    used = []

    def col(ref):
        if isinstance(ref, str) and ref not in raw.columns:  # a key no JSON object has
            return pd.Series("", index=raw.index)
        c = raw[ref] if isinstance(ref, str) else raw.iloc[:, int(ref) - 1]
        used.append(c.isna())  # a JSON value that is not a string or a number: a bad row
        return c.fillna("")

    # The customer id under customer_normalize (trim, then integer, then lower); an empty one is
    # never a purchase (missing_customer: ignore drops it, Kairos counts it a bad row otherwise),
    # nor is an id with blanks around it or a float-written integer without the rule that reads it.
    cust = col(m["customer"]).astype(str)
    rules = m.get("customer_normalize") or []
    if "trim" in rules:
        cust = cust.str.strip()
    float_int = cust.str.match(r"^\d+\.0+$")
    if "integer" in rules:
        cust = cust.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    if "lower" in rules:
        cust = cust.str.lower()
    if "plus_tag" in rules:  # anna+shop@example.com is anna@example.com
        cust = cust.str.replace(r"^([^+@]+)\+[^@]*(@[^@]*)$", r"\1\2", regex=True)
    keep = (cust != "") & ~cust.str.match(r"^\s|.*\s$") & ~(float_int & ("integer" not in rules))
    # Ids the export writes for "no customer" (WooCommerce's guest 0), in any case.
    missing = {str(v).lower() for v in m.get("missing_customer_values") or []}
    keep &= ~cust.str.lower().isin(missing)
    if m.get("cancelled") is not None:  # a value there marks a cancelled order; a boolean's false does not
        cv = col(m["cancelled"]).str.strip()
        keep &= (cv == "") | cv.str.lower().isin(["false", "f", "no", "n", "0"])

    kind = m.get("kind", {})
    if "column" in kind:
        values = kind.get("values") or {"purchase": "purchase"}
        buy = [str(k) for k, v in values.items() if v == "purchase"]
        keep &= col(kind["column"]).isin(buy)
    elif kind.get("constant") != "purchase":
        keep &= False
    t = m["time"]
    tc = col(t["column"])
    if t.get("time_of_day") is not None:  # date and time of day in two columns, joined by a space
        tc = tc + " " + col(t["time_of_day"])
    if t["layout"] in ("excel", "days"):  # days since a date, naive (the zone applies)
        if t["layout"] == "excel":  # since 1899-12-30, from serial 61
            when = day_numbers(tc, "1899-12-30", 61, 2958466)
        else:  # a day number since the mapping's epoch
            when = day_numbers(tc, str(t["epoch"]), 0, 3000000)
        if t.get("zone"):
            when = when.dt.tz_localize(t["zone"], ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC").dt.tz_localize(None)
    elif t["layout"] in ("unix", "unix_ms"):
        unit = "s" if t["layout"] == "unix" else "ms"
        when = pd.to_datetime(pd.to_numeric(tc, errors="coerce"), unit=unit)
    else:
        fmt = strptime_format(t["layout"])
        if "%z" in fmt:
            when = pd.to_datetime(tc, format=fmt, errors="coerce", utc=True).dt.tz_localize(None)
        else:
            when = pd.to_datetime(tc, format=fmt, errors="coerce")
            if t.get("zone"):
                when = when.dt.tz_localize(t["zone"], ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC").dt.tz_localize(None)
    amount = pd.Series(0.0, index=raw.index)
    if m.get("amount") is not None:
        amount = mapped_numbers(col(m["amount"]), m)
        if m.get("quantity") is not None:  # amount is a unit price
            amount = amount * mapped_numbers(col(m["quantity"]), m)
        if m.get("currency") is not None:  # into one currency by the mapping's rates; no rate, no purchase
            rates = {str(k): float(v) for k, v in m["currency"]["rates"].items()}
            amount = amount * col(m["currency"]["column"]).map(rates)
        unit = m.get("amount_unit")
        if unit == "cents":
            amount = amount / 100
        elif unit == "minor":  # the ISO 4217 minor unit of each row's currency
            amount = amount / col(m["currency"]["column"]).str.upper().map(lambda c: 10.0 ** MINOR_EXPONENTS.get(c, 2))
    # A negative amount (a return) is never a purchase: Kairos drops it under negative_amount:
    # ignore and counts it a bad row otherwise.
    keep &= when.notna() & amount.notna() & (amount >= 0)
    for bad in used:
        keep &= ~bad
    if m.get("order") is not None:
        keep &= first_order_lines(col(m["order"]), cust, keep) & ~used[-1]
    return pd.DataFrame({"customer": cust[keep], "time": when[keep], "amount": amount[keep]})


# ISO 4217 currencies whose minor unit is not a hundredth (amount_unit: minor).
MINOR_EXPONENTS = {**{c: 0 for c in "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()},
                   **{c: 3 for c in "BHD IQD JOD KWD LYD OMR TND".split()}}

BLANKS = " \t\u00a0\u202f"


def undecorate(s, m):
    """Amount strings without the decorations the mapping declares (docs/operations.md):
    accounting_negatives' parentheses or trailing minus and one currency_symbol before or after the number, blanks
    between, a sign before or after the symbol; "-" and the bare number for a negative one; a dash
    alone under accounting_negatives is 0. A string whose decorations are not those is "nan"."""
    symbols = m.get("currency_symbol")
    if symbols is None:
        symbols = []
    elif not isinstance(symbols, list):
        symbols = [symbols]
    symbols = sorted((str(x) for x in symbols), key=len, reverse=True)
    accounting = m.get("accounting_negatives") is True

    def one(v):
        v, neg = v.strip(BLANKS), False
        parens = accounting and len(v) >= 2 and v[0] == "(" and v[-1] == ")"
        if parens:
            v, neg = v[1:-1].strip(BLANKS), True
        if accounting and not parens and len(v) >= 2 and v.endswith("-"):  # SAP's "1.234,50-"
            v, neg = v[:-1].strip(BLANKS), True
        if v[:1] in ("-", "+"):
            if neg:
                return "nan"
            v, neg = v[1:].lstrip(BLANKS), v[0] == "-"
        for sym in symbols:
            if v.startswith(sym):
                v = v[len(sym):].lstrip(BLANKS)
                if v[:1] in ("-", "+"):
                    if neg:
                        return "nan"
                    v, neg = v[1:], v[0] == "-"
                break
            if v.endswith(sym):
                v = v[:-len(sym)].rstrip(BLANKS)
                break
        if not v and accounting and neg and not parens:  # Excel's accounting zero: "-", "$ -"
            return "0"
        if not v or not (v[0].isdigit() and v[0].isascii() or v[0] in ".,"):
            return "nan"
        return "-" + v if neg else v
    return s.map(one)


def first_order_lines(oid, cust, keep):
    """The `order` key (docs/operations.md): among the good lines, the first of each non-empty order
    id is its purchase; a later line of the order is not, nor is one of another customer than the
    first (a bad row). A line without an order id stands alone."""
    oid = oid.astype(str).str.strip()
    has = keep & (oid != "")
    first = cust[has].groupby(oid[has]).transform("first")
    ok = pd.Series(True, index=oid.index)
    ok[has] = cust[has] == first
    has &= ok
    ok[has] &= ~oid[has].duplicated(keep="first")
    return ok


def mapped_numbers(s, m):
    """Numbers in the mapping's marks, read as Kairos reads them (docs/operations.md): `decimal`
    "," or "." (default), `thousands` one of , . space ' (with a decimal comma alone, a dot may
    separate thousands; with a space, a no-break space too). A thousands mark only between a
    first group of 1-3 digits and groups of exactly three; anything else is not a number (NaN),
    so "12.5" under a decimal comma and "1,23.5" under thousands "," are dropped as Kairos drops
    them. currency_symbol and accounting_negatives are taken off first (undecorate)."""
    dec = m.get("decimal") or "."
    th = m.get("thousands")
    if th is None and dec == ",":
        th = "."
    s = s.astype(str)
    if m.get("currency_symbol") is not None or m.get("accounting_negatives") is True:
        s = undecorate(s, m)
    s = s.str.strip()
    if th == " ":
        s = s.str.replace("\u00a0", " ", regex=False).str.replace("\u202f", " ", regex=False)
    if th is not None:
        grouped = rf"^-?\d{{1,3}}(?:{re.escape(th)}\d{{3}})+(?:{re.escape(dec)}\d+)?$"
        s = s.where(~s.str.match(grouped), s.str.replace(th, "", regex=False))
    if dec == ",":
        s = s.where(~s.str.contains(".", regex=False), "nan").str.replace(",", ".", regex=False)
    return pd.to_numeric(s, errors="coerce")


def default_cutoffs(ev, test=None, zone=None):
    """Kairos's default protocol (docs/operations.md) from the span of the events (UTC times),
    days counted in the shop's zone when the mapping gives one; the cutoffs are dates."""
    t = ev["time"]
    if zone:
        t = t.dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None)
    first, last = t.min().normalize(), t.max().normalize()
    if test is None:
        if (last - first) / DAY + 1 < 3 * HORIZON:
            raise ValueError(f"events span {(last - first) / DAY + 1:.0f} days, the default protocol needs at least 90")
        test = last + DAY - HORIZON * DAY
    train = [test - k * HORIZON * DAY for k in range(1, 7) if test - k * HORIZON * DAY >= first + HORIZON * DAY]
    return test, sorted(train)


def load_suite_file(path):
    """The data sets of a `kairos eval --suite-file` file, paths resolved against its folder."""
    import os
    import yaml
    doc = yaml.safe_load(open(path))
    base = os.path.dirname(os.path.abspath(path))
    out = list(SUITE) if doc.get("builtin", True) else []
    for d in doc.get("datasets", []):
        ds = {"name": d["name"], "path": os.path.join(base, d["path"]), "format": d["format"]}
        if d.get("mapping"):
            ds["mapping"] = os.path.join(base, d["mapping"])
        if d.get("test_cutoff"):
            ds["test"] = str(d["test_cutoff"])
        if d.get("train_cutoffs"):
            ds["train"] = [str(c) for c in d["train_cutoffs"]]
        out = [o for o in out if o["name"] != ds["name"]] + [ds]
    return out


def features_at(ev, cutoff):
    """log1p RFM + gap features of every customer with a purchase before cutoff, and the
    first purchase day in [cutoff, cutoff + 30 days) (0 = none)."""
    past = ev[ev["time"] < cutoff].sort_values(["customer", "time"])
    g = past.groupby("customer")
    f = pd.DataFrame({
        "recency": (cutoff - g["time"].max()) / DAY,
        "tenure": (cutoff - g["time"].min()) / DAY,
        "n_buy": g.size(),
        "spend": g["amount"].sum(),
        "spend_mean": g["amount"].mean(),
    })
    for w in (30, 90, 180, 365):
        recent = past[past["time"] >= cutoff - w * DAY]
        f[f"buy_{w}d"] = recent.groupby("customer").size()
    gaps = past.groupby("customer")["time"].diff() / DAY
    gs = gaps.groupby(past["customer"])
    f["gap_mean"] = gs.mean()
    f["gap_std"] = gs.std()
    f["gap_last"] = gs.last()
    f["overdue"] = f["recency"] - f["gap_mean"]
    f = f.fillna(0.0)
    future = ev[(ev["time"] >= cutoff) & (ev["time"] < cutoff + HORIZON * DAY)]
    first = ((future.groupby("customer")["time"].min() - cutoff) / DAY).astype(int) + 1
    f["label_day"] = first.reindex(f.index).fillna(0).astype(int)
    return f


def ece(p, y, bins=10):
    k = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = k == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return total / len(p)


def r6(v):
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


def score(name, s, p, day):
    y30 = (day > 0) & (day <= HORIZON)
    y7 = (day > 0) & (day <= 7)
    m = {"name": name, "kind": "peer", "auc": {"7": r6(roc_auc_score(y7, s)), "30": r6(roc_auc_score(y30, s))},
         "pr_auc": {"30": r6(average_precision_score(y30, s))}}
    if p is not None:
        m["brier"] = {"30": r6(brier_score_loss(y30, p))}
        m["ece"] = {"30": r6(ece(p, y30.astype(float)))}
    return m


def run(ds, data_dir):
    t0 = time.perf_counter()
    path = ds["path"] if ds["path"].startswith("/") else f"{data_dir}/{ds['path']}"
    ev = read_mapped(path, ds["mapping"]) if ds["format"] == "csv" else read(path, ds["format"])
    # A csv mapping's zone is the shop's calendar: cutoff dates are its midnights (as in Kairos).
    zone = None
    if ds["format"] == "csv":
        import yaml
        zone = (load_yaml(ds["mapping"]).get("time") or {}).get("zone")
    if "train" not in ds:
        test, train = default_cutoffs(ev, pd.Timestamp(ds["test"]) if "test" in ds else None, zone)
        ds = dict(ds, test=test.strftime("%Y-%m-%d"), train=[c.strftime("%Y-%m-%d") for c in train])

    def cutoff(date):
        c = pd.Timestamp(date)
        return c.tz_localize(zone).tz_convert("UTC").tz_localize(None) if zone else c

    test_cut = cutoff(ds["test"])
    train = pd.concat([features_at(ev, cutoff(c)) for c in ds["train"]])
    test = features_at(ev, test_cut)
    cols = [c for c in test.columns if c != "label_day"]
    Xtr = np.log1p(np.clip(train[cols].to_numpy(dtype=float), 0, None))
    Xte = np.log1p(np.clip(test[cols].to_numpy(dtype=float), 0, None))
    ytr = ((train["label_day"] > 0) & (train["label_day"] <= HORIZON)).to_numpy()
    day = test["label_day"].to_numpy()
    methods = []
    sc = StandardScaler().fit(Xtr)
    lr = LogisticRegression(max_iter=2000).fit(sc.transform(Xtr), ytr)
    p = lr.predict_proba(sc.transform(Xte))[:, 1]
    methods.append(score("logistic", p, p, day))
    gb = HistGradientBoostingClassifier(random_state=0).fit(Xtr, ytr)
    p = gb.predict_proba(Xte)[:, 1]
    methods.append(score("hist_gbdt", p, p, day))
    methods.append(score("recency", -test["recency"].to_numpy(), None, day))
    y30 = (day > 0) & (day <= HORIZON)
    return {"name": ds["name"], "test_cutoff": ds["test"], "train_cutoffs": ds["train"],
            "customers": int(len(test)), "positives_30": int(y30.sum()), "positive_rate_30": r6(y30.mean()),
            "train_rows": int(len(train)), "seconds": round(time.perf_counter() - t0, 2), "methods": methods}


COLUMNS = [("auc", "7", "AUC@7", max), ("auc", "30", "AUC@30", max), ("pr_auc", "30", "PR-AUC@30", max),
           ("brier", "30", "Brier@30", min), ("ece", "30", "ECE@30", min)]


def table(kairos_path, peers_path):
    """The markdown table of docs/benchmarks.md."""
    kairos = {d["name"]: d for d in json.load(open(kairos_path))["datasets"]}
    peers = {d["name"]: d for d in json.load(open(peers_path))["datasets"]}
    cell = lambda m, k, h: "—" if m.get(k, {}).get(h) is None else f"{m[k][h]:.4f}"
    print("| data set | method | " + " | ".join(c[2] for c in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for name, kd in kairos.items():
        pd_ = peers.get(name)
        rows = [(f"Kairos {m['name']}", m) for m in kd["methods"]]
        if pd_:
            rows += [(f"peer {m['name']}", m) for m in pd_["methods"] if m["name"] != "recency"]
        if kd.get("error"):
            print(f"| {name} | error: {kd['error']} |" + " |" * len(COLUMNS))
            continue
        if pd_ and not pd_.get("error") and (pd_["test_cutoff"], pd_["train_cutoffs"]) != (kd["test_cutoff"], kd["train_cutoffs"]):
            sys.exit(f"{name}: the peers' cutoffs {pd_['test_cutoff']} {pd_['train_cutoffs']} are not Kairos's "
                     f"{kd['test_cutoff']} {kd['train_cutoffs']}")
        label = f"{name} ({kd['customers']:,} customers, {100 * kd['positive_rate_30']:.1f}%)"
        for i, (mname, m) in enumerate(rows):
            if m.get("error"):
                print(f"| {label if i == 0 else ''} | {mname} | error: {m['error']} |" + " |" * (len(COLUMNS) - 1))
                continue
            print(f"| {label if i == 0 else ''} | {mname} | " + " | ".join(cell(m, k, h) for k, h, _, _ in COLUMNS) + " |")
        hz = next((m for m in kd["methods"] if m["name"] == "hazard" and not m.get("error")), None)
        if pd_ and hz:
            diffs = []
            for k, h, _, best in COLUMNS:
                vals = [m[k][h] for m in pd_["methods"] if m.get(k, {}).get(h) is not None and m["name"] != "recency"]
                if not vals or hz.get(k, {}).get(h) is None:
                    diffs.append("—")
                    continue
                diffs.append(f"{hz[k][h] - best(vals):+.4f}")
            print(f"| | **hazard − best peer** | " + " | ".join(diffs) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--only", default="", help="run only this data set")
    ap.add_argument("--suite-file", default="", help="a `kairos eval --suite-file` YAML: its data sets too")
    ap.add_argument("--table", nargs=2, metavar=("KAIROS_JSON", "PEERS_JSON"), help="print the side-by-side markdown table")
    a = ap.parse_args()
    if a.table:
        table(*a.table)
        return
    suite = load_suite_file(a.suite_file) if a.suite_file else SUITE
    out = []
    for ds in suite:
        if a.only and ds["name"] != a.only:
            continue
        try:
            out.append(run(ds, a.data_dir))
        except ValueError as e:  # a log too short for the protocol: reported, as Kairos does
            out.append({"name": ds["name"], "error": str(e), "methods": []})
    json.dump({"datasets": out}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
