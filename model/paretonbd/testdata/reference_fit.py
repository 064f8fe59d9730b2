# Independent maximum-likelihood fit of Pareto/NBD to the CDNOW summary with
# SciPy (Debian python3-scipy), for paretonbd_test.go:
#   /usr/bin/python3 model/paretonbd/testdata/reference_fit.py
# The likelihood is the defining integral over the death time, evaluated by
# adaptive quadrature (scipy.integrate.quad), not the hypergeometric form:
#   L = G(r+x) a^r b^s / G(r) * [ (a+T)^-(r+x) (b+T)^-s
#       + s * Int_{t_x}^{T} (a+tau)^-(r+x) (b+tau)^-(s+1) dtau ].
import csv, os
import numpy as np
from scipy.integrate import quad
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

here = os.path.dirname(os.path.abspath(__file__))
rows = list(csv.DictReader(open(os.path.join(here, "../../bgnbd/testdata/cdnow_customers_summary.csv"))))
# Distinct summaries with counts, as the Go code sums them.
from collections import Counter
cnt = Counter((float(r["frequency"]), float(r["recency"]), float(r["T"])) for r in rows)
keys = list(cnt)

def loglik(p):
    r, al, s, be = np.exp(p)
    tot = 0.0
    for (x, tx, T) in keys:
        lead = gammaln(r + x) - gammaln(r) + r * np.log(al) + s * np.log(be)
        alive = (al + T) ** -(r + x) * (be + T) ** -s
        dead = s * quad(lambda u: (al + u) ** -(r + x) * (be + u) ** -(s + 1), tx, T, epsabs=0, epsrel=1e-12)[0] if T > tx else 0.0
        tot += cnt[(x, tx, T)] * (lead + np.log(alive + dead))
    return tot

res = minimize(lambda p: -loglik(p), np.log([0.5, 10, 0.5, 10]), method="Nelder-Mead",
               options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 4000})
r, al, s, be = np.exp(res.x)
print(f"r={r:.6f} alpha={al:.6f} s={s:.6f} beta={be:.6f} loglik={-res.fun:.6f} success={res.success}")
# One customer at the published parameters, for TestLogLikelihoodHandPicked.
r, al, s, be = 0.553, 10.578, 0.606, 11.669
for (x, tx, T) in [(2, 30.43, 38.86), (0, 0, 38.86), (14, 35.0, 36.0), (1, 1.0, 70.0)]:
    lead = gammaln(r + x) - gammaln(r) + r * np.log(al) + s * np.log(be)
    alive = (al + T) ** -(r + x) * (be + T) ** -s
    dead = s * quad(lambda u: (al + u) ** -(r + x) * (be + u) ** -(s + 1), tx, T, epsabs=0, epsrel=1e-13)[0] if T > tx else 0.0
    print(f"x={x} t_x={tx} T={T}: loglik={lead + np.log(alive + dead):.12f} palive={alive / (alive + dead):.12f}")
