# Reference values for metrics_test.go, computed with Debian's scikit-learn 1.2.1:
#   /usr/bin/python3 model/metrics/testdata/reference.py
# The data are printed as Go literals and pasted into the test with the results.
import numpy as np
from sklearn.metrics import (roc_auc_score, average_precision_score, brier_score_loss,
                             log_loss, precision_recall_curve)
from sklearn.calibration import calibration_curve

rng = np.random.default_rng(20261127)
n = 40
y = rng.random(n) < 0.35
# Scores rounded to one decimal so that ties occur, correlated with y.
s = np.round(np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1), 1)
print("scores:", ", ".join(f"{v:g}" for v in s))
print("labels:", ", ".join("true" if v else "false" for v in y))
print(f"auc   = {roc_auc_score(y, s)!r}")
print(f"ap    = {average_precision_score(y, s)!r}")
print(f"brier = {brier_score_loss(y, s)!r}")
print(f"logl  = {log_loss(y, np.clip(s, 1e-15, 1 - 1e-15))!r}")
p, r, t = precision_recall_curve(y, s)
f1 = 2 * p * r / np.where(p + r == 0, 1, p + r)
k = int(np.argmax(f1[:-1]))
print(f"bestf1 threshold = {t[k]!r} f1 = {f1[k]!r}")
frac, mean = calibration_curve(y, s, n_bins=3, strategy="uniform")
print("calibration frac_pos :", list(frac))
print("calibration mean_pred:", list(mean))

# Harrell's C by brute force over all pairs (lifelines' convention: an event at
# t is earlier than a censoring at t; two events at t are not comparable).
times = np.round(rng.random(n) * 10)  # integer times 0..10 so ties occur
events = rng.random(n) < 0.6
risk = s
num = den = 0.0
for i in range(n):
    for j in range(n):
        if not events[i]:
            continue
        if times[i] < times[j] or (times[i] == times[j] and not events[j]):
            den += 1
            if risk[i] > risk[j]:
                num += 1
            elif risk[i] == risk[j]:
                num += 0.5
print("times:", ", ".join(f"{v:g}" for v in times))
print("events:", ", ".join("true" if v else "false" for v in events))
print(f"cindex = {num / den!r} ({num} / {den})")
