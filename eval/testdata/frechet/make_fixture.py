"""Writes fixture.json: two sets of feature vectors and the Fréchet distance
between their Gaussian fits, computed as FID implementations do it, with
scipy.linalg.sqrtm of the (non-symmetric) product Σ_A Σ_B.

Run from this folder: /usr/bin/python3 make_fixture.py (numpy, scipy).
The vectors are rounded to float32 first, and the distance is computed from
the rounded values, so a reader in float32 sees exactly these numbers.
"""
import json

import numpy as np
import scipy.linalg

rng = np.random.default_rng(20261202)
d = 6
# Two covariances that do not commute, and different means.
la = rng.normal(size=(d, d))
lb = rng.normal(size=(d, d)) * 0.7
a = (rng.normal(size=(300, d)) @ la.T + rng.normal(size=d)).astype(np.float32)
b = (rng.normal(size=(250, d)) @ lb.T + rng.normal(size=d)).astype(np.float32)


def fd(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root, _ = scipy.linalg.sqrtm(sx @ sy, disp=False)
    diff = mx - my
    return float(diff @ diff + np.trace(sx) + np.trace(sy) - 2 * np.trace(root.real))


out = {
    "d": d,
    "a": [float(v) for v in a.ravel()],
    "b": [float(v) for v in b.ravel()],
    "fd": fd(a, b),
    "fd_a_half": fd(a[:150], a[150:]),
    "scipy": scipy.__version__,
    "numpy": np.__version__,
}
with open("fixture.json", "w") as f:
    json.dump(out, f)
print("fd", out["fd"], "fd_a_half", out["fd_a_half"])
