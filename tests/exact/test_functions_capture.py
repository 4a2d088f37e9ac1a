"""The pinned functions operator capture added for LLMs: sin/cos (RoPE), integer powers, var,
argmax/max over a dimension, and the ATen-level reductions; each against MPFR or numpy float32,
and gates against the reference bit for bit."""

import math

import gmpy2
import numpy as np
import pytest
import torch

from isospike.exact import functions as fn
from isospike.exact.arith import GateArith, TorchArith
from isospike.metrics import ulp_distance

T, G = TorchArith(), GateArith()


def bits(t):
    return t.contiguous().view(torch.int32)


def mpfr(f, x: torch.Tensor) -> torch.Tensor:
    out = []
    ctx = gmpy2.ieee(32)
    ctx.precision = 100
    for v in x.tolist():
        with gmpy2.context(ctx):
            y = f(gmpy2.mpfr(v))
        with gmpy2.context(gmpy2.ieee(32)):
            out.append(float(gmpy2.mpfr(y)))
    return torch.tensor(out, dtype=torch.float32)


@pytest.mark.parametrize("name,f", [("sin", gmpy2.sin), ("cos", gmpy2.cos)])
def test_sin_cos_within_one_ulp_of_mpfr_where_rope_evaluates_them(name, f):
    """RoPE angles are positions x frequencies <= 1: |x| up to the context length. Within
    |x| < 2^14 the three-part Cody-Waite reduction keeps sin/cos within 1 ULP (0 on most) of the
    correctly rounded value, except near zeros of the function where any reduction error is
    amplified relative to the tiny result (checked in absolute terms there)."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.concatenate([rng.uniform(-math.pi, math.pi, 3000), rng.uniform(-16384, 16384, 3000),
                                         rng.normal(0, 1, 1000)]).astype(np.float32))
    y, ref = getattr(fn, name)(T, x), mpfr(f, x)
    d = ulp_distance(y, ref)
    big = ref.abs() > 1e-3
    assert int(d[big].max()) <= 1 and float(d[big].double().mean()) < 0.3
    assert float((y - ref).abs().max()) < 2e-7 * (1 + float(x.abs().max()) / 2**14)
    assert torch.equal(bits(getattr(fn, name)(G, x[:500])), bits(y[:500]))


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos_special_values(name):
    x = torch.tensor([0.0, -0.0, 1e-40, math.pi / 2, math.pi, 2.0**21, -(2.0**22), math.inf, -math.inf, math.nan])
    y = getattr(fn, name)(T, x)
    assert torch.equal(bits(getattr(fn, name)(G, x)), bits(y))
    assert torch.isnan(y[-5:]).all()  # not meaningful beyond |x| = 2^21 (documented), inf, NaN
    if name == "sin":
        assert bits(y[1]) == bits(torch.tensor(-0.0)) and y[2] == x[2]  # odd, exact for tiny x
    else:
        assert y[0] == 1.0 and y[1] == 1.0


@pytest.mark.parametrize("e", [0, 1, 2, 3, 4, -1, -2, 0.5, -0.5])
def test_integer_and_half_powers(e):
    x = torch.tensor([0.0, -0.0, 1.5, -2.25, 3e-20, 7e15, math.inf, -math.inf, math.nan, 0.1])
    y = fn.pow_scalar(T, x, e)
    assert torch.equal(bits(fn.pow_scalar(G, x, e)), bits(y))
    if e in (0, 1, 2, -1, 0.5):  # a single correctly rounded operation (or none): equals torch
        with np.errstate(all="ignore"):
            want = torch.from_numpy(np.power(x.numpy(), np.float32(e)).astype(np.float32))
        assert torch.equal(torch.isnan(y), torch.isnan(want)) and torch.equal(y[~torch.isnan(y)], want[~torch.isnan(want)])
    with pytest.raises(ValueError, match="exponent"):
        fn.pow_scalar(T, x, 2.5)


def test_reductions_follow_torch_shapes_and_nan_rules():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5)
    for dims, keep in [(None, False), ((0, 2), True), (-1, False), ([], False)]:
        s = fn.sum_dims(T, x, dims, keep)
        want = x.sum() if dims in (None, []) else x.sum(dims, keepdim=keep)
        assert s.shape == want.shape and torch.allclose(s, want, atol=1e-5)
        assert torch.equal(bits(fn.sum_dims(G, x, dims, keep)), bits(s))
    v = fn.var_dims(T, x, -1, 1.0, True)
    assert torch.allclose(v, x.var(-1, keepdim=True), atol=1e-6)
    x[0, 1, 3] = math.nan
    x[1, 2, 0] = x[1, 2, 4] = 9.0  # a tie: the first maximum wins, as torch
    for largest in (True, False):
        values, idx = fn.arg_extreme(T, x, -1, largest)
        want = x.max(-1) if largest else x.min(-1)
        assert torch.equal(idx, want.indices)
        assert torch.equal(torch.isnan(values), torch.isnan(want.values))
        gv, gi = fn.arg_extreme(G, x, -1, largest)
        assert torch.equal(gi, idx) and torch.equal(bits(gv), bits(values))
