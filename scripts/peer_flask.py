#!/usr/bin/env python3
"""Peer for `kairos bench predict`: the endpoint a data scientist would deploy to serve
the same hazard model, with Flask (Debian's python3-flask) and scikit-learn, without
authentication and without an audit log.

POST /predict {"features": [...]} answers {"within": {"1d": ..., "3d": ..., "7d": ...,
"14d": ..., "30d": ...}, "expected_days": ..., "most_likely_day": ...}. The feature
vector is the model's (schema order, transformed); the peer has no feature builder.

Usage: /usr/bin/python3 scripts/peer_flask.py MODEL.json PORT
It prints "ready" on stdout once it listens on 127.0.0.1:PORT.
"""
import json
import logging
import sys

import numpy as np
from flask import Flask, jsonify, request
from sklearn.preprocessing import StandardScaler

HORIZONS = (1, 3, 7, 14, 30)


def load(path):
    with open(path) as f:
        m = json.load(f)
    if m.get("format") != "kairos-hazard-model" or m.get("kind") not in ("linear", "mlp"):
        raise SystemExit(f"{path}: not a kairos hazard model file")
    d = len(m["feature_schema"]["names"])
    scaler = StandardScaler()
    scaler.mean_ = np.asarray(m["standardization"]["mean"], dtype=float)
    scaler.scale_ = np.asarray(m["standardization"]["scale"], dtype=float)
    scaler.var_ = scaler.scale_ ** 2
    scaler.n_features_in_ = d
    m["_scaler"] = scaler
    m["_b"] = np.asarray(m["baseline_logits"], dtype=float)
    if m["kind"] == "linear":
        m["_w"] = np.asarray(m["weights"], dtype=float)
    else:
        h = m["hidden"]
        m["_w1"] = np.asarray(m["hidden_weights"], dtype=float).reshape(h, d)
        m["_c1"] = np.asarray(m["hidden_bias"], dtype=float)
        m["_w2"] = np.asarray(m["output_weights"], dtype=float)
    return m


def predict(m, x):
    z = m["_scaler"].transform(np.asarray(x, dtype=float).reshape(1, -1))[0]
    if m["kind"] == "linear":
        f = float(m["_w"] @ z)
    else:
        f = float(m["_w2"] @ np.tanh(m["_w1"] @ z + m["_c1"]))
    h = 1.0 / (1.0 + np.exp(-(m["_b"] + f)))
    surv = np.concatenate(([1.0], np.cumprod(1.0 - h)))
    first = h * surv[:-1]
    return {
        "within": {f"{t}d": float(1.0 - surv[t]) for t in HORIZONS},
        "expected_days": float(surv[:-1].sum()),
        "most_likely_day": int(np.argmax(first)) + 1,
    }


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    model = load(sys.argv[1])
    d = len(model["feature_schema"]["names"])
    app = Flask("kairos-peer")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    @app.post("/predict")
    def serve():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or len(body.get("features") or []) != d:
            return jsonify({"error": f"want {{\"features\": [{d} numbers]}}"}), 400
        return jsonify(predict(model, body["features"]))

    print("ready", flush=True)
    app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)


if __name__ == "__main__":
    main()
