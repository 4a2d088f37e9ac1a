"""Fit the polynomial coefficients pinned in ``isospike/exact/functions.py``.

    python tools/fit_coefficients.py

Near-minimax fits (Lawson's iteratively reweighted least squares on a dense Chebyshev grid,
in float64 against mpmath values), rounded to float32. The printed constants are copied into
functions.py; this script documents where they come from and reproduces them.
"""

from __future__ import annotations

import mpmath
import numpy as np

mpmath.mp.prec = 80


def lawson_fit(x, y, basis_powers, weight, iters=60):
    """Coefficients c minimizing max |weight * (sum c_j x^p_j - y)| (approximately)."""
    V = np.stack([x ** p for p in basis_powers], axis=1)
    w = np.ones_like(x)
    for _ in range(iters):
        sw = np.sqrt(w) * weight
        c, *_ = np.linalg.lstsq(V * sw[:, None], y * sw, rcond=None)
        err = np.abs(weight * (V @ c - y))
        w = w * err
        w /= w.sum()
    return c, float(np.abs(weight * (V @ c - y)).max())


def cheb_grid(a, b, n=4000):
    k = np.arange(n)
    return (a + b) / 2 + (b - a) / 2 * np.cos(np.pi * (k + 0.5) / n)


def f32(c):
    return [float(np.float32(v)) for v in c]


def fit_exp(degree=6):
    """e^r = 1 + r + r^2 P(r) on |r| <= ln2/2; P of degree degree-2."""
    r = cheb_grid(-0.3466, 0.3466)
    target = np.array([float((mpmath.exp(v) - 1 - v) / (v * v)) if v != 0 else 0.5 for v in r])
    c, err = lawson_fit(r, target, range(degree - 1), r * r / np.exp(r))
    return f32(c), err


def fit_odd(fn, a, b, degree):
    """fn(x) = x + x^3 P(x^2) on [a, b] (odd fn): P in x^2 of degree (degree-3)/2."""
    x = cheb_grid(a, b)
    target = np.array([float((fn(mpmath.mpf(v)) - v) / v ** 3) for v in x])
    c, err = lawson_fit(x * x, target, range((degree - 1) // 2), x ** 3 / np.abs([float(fn(mpmath.mpf(v))) for v in x]))
    return f32(c), err


def hi_lo(value):
    """A constant as float32 hi + lo (hi + lo carries ~48 bits)."""
    hi = np.float32(float(value))
    return float(hi), float(np.float32(float(value - mpmath.mpf(float(hi)))))


def fit_erf_small(degree=13):
    """erf(x) = x (c0 + x^2 P(x^2)) on [0, 1], c0 = 2/sqrt(pi) exactly (as hi + lo)."""
    x = cheb_grid(1e-3, 1.0)
    c0 = 2 / mpmath.sqrt(mpmath.pi)
    target = np.array([float((mpmath.erf(v) / v - c0) / v ** 2) for v in x])
    c, err = lawson_fit(x * x, target, range(degree // 2), x ** 3)
    return hi_lo(c0), f32(c), err


def fit_erf_piece(a, b, degree):
    """erf(x) = erf(a) + t Q(t), t = x - a, on [a, b]; erf(a) as hi + lo."""
    x = cheb_grid(a, b)
    t = x - a
    target = np.array([float((mpmath.erf(v) - mpmath.erf(a)) / (v - a)) for v in x])
    c, err = lawson_fit(t, target, range(degree), t)
    return hi_lo(mpmath.erf(a)), f32(c), err


def fit_sin(degree=9):
    """sin(r) = r + r^3 P(r^2) on |r| <= pi/4 (the reduced argument of sin/cos)."""
    return fit_odd(mpmath.sin, 1e-4, float(mpmath.pi / 4), degree)


def fit_cos(degree=8):
    """cos(r) = 1 - r^2 / 2 + r^4 P(r^2) on |r| <= pi/4; P of degree (degree - 4) / 2 in r^2."""
    r = cheb_grid(1e-3, float(mpmath.pi / 4))
    target = np.array([float((mpmath.cos(v) - 1 + v * v / 2) / v ** 4) for v in r])
    c, err = lawson_fit(r * r, target, range((degree - 2) // 2), r ** 4 / np.cos(r))
    return f32(c), err


def pio2_parts():
    """pi/2 as three float32 parts (Cody-Waite): P1 + P2 + P3 carries ~72 bits."""
    rest = mpmath.pi / 2
    parts = []
    for _ in range(3):
        part = float(np.float32(float(rest)))
        parts.append(part)
        rest -= mpmath.mpf(part)
    return parts


if __name__ == "__main__":
    np.set_printoptions(precision=9)
    c, e = fit_exp()
    print("EXP_P (c2..c6)", c, "max rel err", e)
    c, e = fit_odd(mpmath.tanh, 1e-4, 0.625, 11)
    print("TANH_P", c, "max rel err", e)
    c0, c, e = fit_erf_small()
    print("ERF_SMALL c0 (hi, lo)", c0, "P", c, "max abs err of x^2 P", e)
    for a, b in ((1.0, 2.0), (2.0, 3.0), (3.0, 3.9)):
        c0, c, e = fit_erf_piece(a, b, 10)
        print(f"ERF_PIECE[{a}] erf(a) (hi, lo)", c0, "Q", c, "max abs err", e)
    c, e = fit_sin()
    print("SIN_P", c, "max rel err", e)
    c, e = fit_cos()
    print("COS_P", c, "max rel err", e)
    print("PIO2 (P1, P2, P3)", pio2_parts(), "TWO_OVER_PI", float(np.float32(float(2 / mpmath.pi))))
