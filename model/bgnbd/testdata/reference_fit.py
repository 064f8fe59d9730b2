# Independent maximum-likelihood fit of BG/NBD to the CDNOW summary with SciPy
# (Debian python3-scipy), for bgnbd_test.go:
#   /usr/bin/python3 model/bgnbd/testdata/reference_fit.py
import csv, os
import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

here = os.path.dirname(os.path.abspath(__file__))
rows = list(csv.DictReader(open(os.path.join(here, "cdnow_customers_summary.csv"))))
x = np.array([float(r["frequency"]) for r in rows])
tx = np.array([float(r["recency"]) for r in rows])
T = np.array([float(r["T"]) for r in rows])

def loglik(p):
    r, al, a, b = np.exp(p)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(al)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(al + T)
    a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(al + tx), -np.inf)
    return np.sum(a1 + a2 + np.logaddexp(a3, a4))

res = minimize(lambda p: -loglik(p), np.zeros(4), method="Nelder-Mead",
               options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 20000, "maxfev": 40000})
r, al, a, b = np.exp(res.x)
print(f"r={r:.6f} alpha={al:.6f} a={a:.6f} b={b:.6f} loglik={-res.fun:.6f} success={res.success}")
# Conditional expectation, FHL 2005 as printed, at the fit: x=2, t_x=30.43, T=38.86, t=39.
xx, txx, TT, t = 2, 30.43, 38.86, 39
z = t / (al + TT + t)
num = (a + b + xx - 1) / (a - 1) * (1 - ((al + TT) / (al + TT + t)) ** (r + xx) * hyp2f1(r + xx, b + xx, a + b + xx - 1, z))
den = 1 + a / (b + xx - 1) * ((al + TT) / (al + txx)) ** (r + xx)
print(f"E[Y(39)|2,30.43,38.86]={num / den:.6f}")
