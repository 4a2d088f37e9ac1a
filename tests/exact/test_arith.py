"""TorchArith (the reference) must be the IEEE operation the circuits compute, bit for bit."""

import numpy as np
import pytest
import torch

from isospike.exact.arith import GateArith, TorchArith

from .conftest import f32_from_bits, random_bits

T, G = TorchArith(), GateArith()


def same_bits_or_both_nan(a, b):  # strict: the reference canonicalizes NaNs as the circuits do
    return a.view(torch.int32) == b.view(torch.int32)


def operands(n, seed, k=3):
    return [f32_from_bits(random_bits(n, 32, seed + i).astype(np.uint32)) for i in range(k)]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "minimum", "maximum"])
def test_binary_ops_agree(op):
    a, b = operands(50000, 20, 2)
    assert same_bits_or_both_nan(getattr(T, op)(a, b), getattr(G, op)(a, b)).all()


@pytest.mark.parametrize("op", ["lt", "le", "eq"])
def test_comparisons_agree(op):
    a, b = operands(20000, 30, 2)
    assert torch.equal(getattr(T, op)(a, b), getattr(G, op)(a, b))


def test_unary_and_fma_agree():
    a, b, c = operands(50000, 40)
    for op in ("sqrt", "neg", "abs"):
        assert same_bits_or_both_nan(getattr(T, op)(a), getattr(G, op)(a)).all(), op
    assert same_bits_or_both_nan(T.fma(a, b, c), G.fma(a, b, c)).all()
    near = -(a * b)  # cancellation-heavy fma cases
    assert same_bits_or_both_nan(T.fma(a, b, near), G.fma(a, b, near)).all()


def test_ldexp_where_and_int_conversions_agree():
    a, b = operands(50000, 50, 2)
    rng = np.random.default_rng(0)
    k = torch.from_numpy(rng.integers(-400, 400, 50000).astype(np.int32))
    k[:100] = torch.from_numpy(rng.integers(-2**31, 2**31 - 1, 100).astype(np.int32))
    assert same_bits_or_both_nan(T.ldexp(a, k), G.ldexp(a, k)).all()
    cond = torch.from_numpy(rng.integers(0, 2, 50000).astype(bool))
    assert same_bits_or_both_nan(T.where(cond, a, b), G.where(cond, a, b)).all()
    assert torch.equal(T.to_int(a), G.to_int(a))
    i = torch.from_numpy(rng.integers(-2**31, 2**31 - 1, 50000).astype(np.int32))
    assert torch.equal(T.from_int(i), G.from_int(i))
