"""IEEE-754 operations computed by the gate circuits, against independent references:
numpy float32/float16 (correctly rounded for + - * / sqrt), ml_dtypes bfloat16, Berkeley
SoftFloat (softfloatpy) and MPFR (gmpy2) for fused multiply-add."""

import gmpy2
import ml_dtypes
import numpy as np
import pytest
import softfloatpy as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import isospike.exact as ex

from .conftest import f32_from_bits, random_bits, same_bits_or_both_nan

NP_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
}


def np_ref(op, *arrays):
    with np.errstate(all="ignore"):
        if op in NP_BINARY:
            return NP_BINARY[op](*arrays)
        if op == "sqrt":
            return np.sqrt(arrays[0])
    raise KeyError(op)


def check(op, *tensors):
    y = getattr(ex, op)(*tensors)
    if tensors[0].dtype == torch.bfloat16:
        arrays = [t.view(torch.int16).numpy().view(ml_dtypes.bfloat16) for t in tensors]
        ref = torch.from_numpy(np_ref(op, *arrays).view(np.int16).copy()).view(torch.bfloat16)
    else:
        ref = torch.from_numpy(np_ref(op, *[t.numpy() for t in tensors]))
    ok = same_bits_or_both_nan(y, ref.reshape(y.shape))
    bad = (~ok).nonzero().flatten()[:5].tolist()
    assert ok.all(), f"{op}: {int((~ok).sum())} mismatches, first inputs {[[t.reshape(-1)[i].item() for t in tensors] for i in bad]}"


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_float32_binary_all_pairs_of_directed_values(op, f32_specials):
    a = f32_specials[:, None].expand(-1, len(f32_specials)).reshape(-1)
    b = f32_specials[None, :].expand(len(f32_specials), -1).reshape(-1)
    check(op, a, b)


def test_float32_sqrt_directed(f32_specials):
    check("sqrt", f32_specials)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_float32_binary_random_bit_patterns(op):
    a = f32_from_bits(random_bits(20000, 32, 1).astype(np.uint32))
    b = f32_from_bits(random_bits(20000, 32, 2).astype(np.uint32))
    check(op, a, b)


def test_float32_sqrt_random():
    check("sqrt", f32_from_bits(random_bits(20000, 32, 3).astype(np.uint32)))


def test_addition_with_exponent_difference_around_the_significand_width():
    # the seed's reference adder returns the larger operand whenever the exponents differ by 24
    base = torch.tensor([1.0, 1.5, -1.0, 1.9999999, 1.25], dtype=torch.float32)
    rows = []
    for d in range(20, 30):
        for m in (1.0, 1.5, 1.0000001, 1.9999999):
            rows.append((base, torch.full_like(base, m * 2.0 ** -d)))
            rows.append((base, torch.full_like(base, -m * 2.0 ** -d)))
    a = torch.cat([r[0] for r in rows])
    b = torch.cat([r[1] for r in rows])
    check("add", a, b)
    assert ex.add(torch.tensor([1.0]), torch.tensor([1.5 * 2 ** -24])).item() == np.float32(1) + np.float32(1.5 * 2 ** -24)


def test_subnormal_sums_ties_cancellation_and_overflow():
    tiny = torch.tensor([1e-45, 1e-45, 5.877472e-39, -1e-45], dtype=torch.float32)
    check("add", tiny, tiny.flip(0))
    one = torch.ones(4)
    ties = torch.tensor([2.0 ** -24, 3 * 2.0 ** -24, 2.0 ** -24 + 2.0 ** -47, -(2.0 ** -25)])  # exact ties and near ties
    check("add", one, ties)
    x = torch.tensor([2.5, -7.0, 1e-40, 3.4028235e38])
    y = ex.add(x, -x)
    assert torch.equal(y.view(torch.int32), torch.zeros(4, dtype=torch.int32))  # x - x = +0
    assert torch.equal(ex.add(torch.tensor([-0.0]), torch.tensor([-0.0])).view(torch.int32), torch.tensor([-0.0]).view(torch.int32))
    big = torch.tensor([3.4028235e38, -3.4028235e38])
    assert torch.isinf(ex.add(big, big)).all() and torch.isinf(ex.mul(big, torch.tensor([2.0, 2.0]))).all()


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_float32_hypothesis_bit_patterns(x, y):
    a, b = f32_from_bits([x]), f32_from_bits([y])
    for op in ("add", "sub", "mul", "div"):
        check(op, a, b)


def _sf32(bits):
    return sf.Float32.from_bytes(int(bits).to_bytes(4, "big"))


def _bits32(v):
    return int.from_bytes(v.to_bytes(), "big")


def test_float32_fma_against_softfloat():
    n = 6000
    a = random_bits(n, 32, 4).astype(np.uint32)
    b = random_bits(n, 32, 5).astype(np.uint32)
    c = random_bits(n, 32, 6).astype(np.uint32)
    with np.errstate(all="ignore"):
        prod = (a.view(np.float32)[: n // 2] * b.view(np.float32)[: n // 2]).view(np.uint32)
    c[: n // 2] = (prod ^ np.uint32(0x80000000)) ^ np.random.default_rng(7).integers(0, 256, n // 2).astype(np.uint32)
    ref = np.array([_bits32(sf.f32_mul_add(_sf32(x), _sf32(y), _sf32(z))) for x, y, z in zip(a, b, c)], dtype=np.uint32)
    y = ex.fma(f32_from_bits(a), f32_from_bits(b), f32_from_bits(c))
    assert same_bits_or_both_nan(y, f32_from_bits(ref)).all()


def test_fma_is_not_mul_then_add():
    a = torch.tensor([1.0 + 2 ** -12], dtype=torch.float32)
    c = torch.tensor([-(1.0 + 2 ** -11)], dtype=torch.float32)
    fused = ex.fma(a, a, c)
    assert fused.item() == 2.0 ** -24  # the separate product would round the 2^-24 away
    assert ex.add(ex.mul(a, a), c).item() == 0.0


# ---------------------------------------------------------------- float16 and bfloat16
ALL16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def t16(bits, dtype):
    return torch.from_numpy(np.asarray(bits, dtype=np.uint16).view(np.int16).copy()).view(dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16bit_sqrt_exhaustive(dtype):
    check("sqrt", t16(ALL16, dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_16bit_binary_random(dtype, op):
    rng = np.random.default_rng(8)
    a, b = rng.integers(0, 1 << 16, (2, 30000)).astype(np.uint16)
    check(op, t16(a, dtype), t16(b, dtype))


def test_float16_fma_against_softfloat():
    rng = np.random.default_rng(9)
    a, b, c = rng.integers(0, 1 << 16, (3, 4000)).astype(np.uint16)

    def f16(bits):
        return sf.Float16.from_bytes(int(bits).to_bytes(2, "big"))

    ref = np.array([int.from_bytes(sf.f16_mul_add(f16(x), f16(y), f16(z)).to_bytes(), "big") for x, y, z in zip(a, b, c)], dtype=np.uint16)
    y = ex.fma(t16(a, torch.float16), t16(b, torch.float16), t16(c, torch.float16))
    assert same_bits_or_both_nan(y, t16(ref, torch.float16)).all()


def test_bfloat16_fma_against_mpfr():
    rng = np.random.default_rng(10)
    a, b, c = rng.integers(0, 1 << 16, (3, 3000)).astype(np.uint16)
    a &= 0x7FFF  # avoid overflowing products most of the time
    ctx = gmpy2.context(precision=8, emin=-132, emax=128, subnormalize=True)
    vals = [t16(v, torch.bfloat16).float().numpy() for v in (a, b, c)]
    ref = []
    with gmpy2.context(ctx):
        for x, y, z in zip(*vals):
            r = gmpy2.fma(gmpy2.mpfr(float(x)), gmpy2.mpfr(float(y)), gmpy2.mpfr(float(z)))
            ref.append(float(r))
    ref_t = torch.tensor(ref, dtype=torch.float32).bfloat16()  # exact: r is a bfloat16 value
    y = ex.fma(*(t16(v, torch.bfloat16) for v in (a, b, c)))
    assert same_bits_or_both_nan(y, ref_t).all()


# ---------------------------------------------------------------- conversions
def test_float16_and_bfloat16_to_float32_exhaustive():
    for dtype in (torch.float16, torch.bfloat16):
        x = t16(ALL16, dtype)
        assert same_bits_or_both_nan(ex.to_float32(x), x.float()).all()


def test_float32_to_16bit_rounding():
    x = f32_from_bits(random_bits(50000, 32, 11).astype(np.uint32))
    for fn, dtype in ((ex.to_float16, torch.float16), (ex.to_bfloat16, torch.bfloat16)):
        assert same_bits_or_both_nan(fn(x), x.to(dtype)).all()


def test_16bit_cross_conversions_exhaustive():
    for src, fn, dst in ((torch.float16, ex.to_bfloat16, torch.bfloat16), (torch.bfloat16, ex.to_float16, torch.float16)):
        x = t16(ALL16, src)
        assert same_bits_or_both_nan(fn(x), x.float().to(dst)).all()  # float32 hop is exact


def test_int_conversions():
    rng = np.random.default_rng(12)
    ints = np.concatenate([rng.integers(-2**31, 2**31, 20000), [0, 1, -1, 2**31 - 1, -2**31, 2**24 + 1, -(2**24 + 1)]]).astype(np.int32)
    x = torch.from_numpy(ints)
    assert torch.equal(ex.from_int(x).view(torch.int32), torch.from_numpy(ints.astype(np.float32)).view(torch.int32))
    with np.errstate(over="ignore"):
        ref16 = ints.astype(np.float16)  # correctly rounded (+-inf beyond 65504)
    assert torch.equal(ex.from_int(x, torch.float16), torch.from_numpy(ref16))
    # bfloat16 against MPFR: torch and ml_dtypes double-round through float32 here
    assert ex.from_int(torch.tensor([610271223, -610271223]), torch.bfloat16).tolist() == [608174080.0, -608174080.0]
    ctx = gmpy2.context(precision=8, emin=-132, emax=128, subnormalize=True)
    with gmpy2.context(ctx):
        ref_bf = torch.tensor([float(gmpy2.mpfr(int(v))) for v in ints[:3000]]).bfloat16()
    assert torch.equal(ex.from_int(x[:3000], torch.bfloat16).view(torch.int16), ref_bf.view(torch.int16))
    big = torch.tensor([2**62 + 2**39 + 1, -(2**63), 2**53 + 1, 0])
    assert torch.equal(ex.from_int(big), torch.from_numpy(big.numpy().astype(np.float32)))
    small = torch.tensor([-128, 0, 127], dtype=torch.int8)
    assert ex.from_int(small).tolist() == [-128.0, 0.0, 127.0]
    f = f32_from_bits(random_bits(20000, 32, 13).astype(np.uint32))
    with np.errstate(invalid="ignore"):
        ref = f.numpy().astype(np.int32)  # x86 truncation; NaN/out of range -> INT_MIN
    assert torch.equal(ex.to_int(f), torch.from_numpy(ref))
    edge = torch.tensor([2147483520.0, -2147483648.0, 2147483648.0, -0.9, 0.9, -1e-45, float("inf"), float("-inf")])
    assert ex.to_int(edge).tolist() == [2147483520, -2**31, -2**31, 0, 0, 0, -2**31, -2**31]


# ---------------------------------------------------------------- comparisons and min/max
def test_comparisons_and_minmax_all_pairs(f32_specials):
    a = f32_specials[:, None].expand(-1, len(f32_specials)).reshape(-1)
    b = f32_specials[None, :].expand(len(f32_specials), -1).reshape(-1)
    assert torch.equal(ex.eq(a, b), a == b)
    assert torch.equal(ex.lt(a, b), a < b)
    assert torch.equal(ex.le(a, b), a <= b)
    # torch agrees everywhere except +0 vs -0, where its answer depends on the kernel path
    zero_pair = (a == 0) & (b == 0)
    assert same_bits_or_both_nan(ex.minimum(a, b), torch.minimum(a, b))[~zero_pair].all()
    assert same_bits_or_both_nan(ex.maximum(a, b), torch.maximum(a, b))[~zero_pair].all()
    z = torch.tensor([0.0, -0.0])
    assert ex.minimum(z, z.flip(0)).view(torch.int32).tolist() == [-2**31, -2**31]  # -0 < +0
    assert ex.maximum(z, z.flip(0)).view(torch.int32).tolist() == [0, 0]


def test_neg_and_abs_flip_only_the_sign_line(f32_specials):
    assert torch.equal(ex.neg(f32_specials).view(torch.int32), (-f32_specials).view(torch.int32))
    assert torch.equal(ex.abs(f32_specials).view(torch.int32), f32_specials.abs().view(torch.int32))
    assert ex.cost("abs").neurons == 0 and ex.cost("neg").neurons == 1


# ---------------------------------------------------------------- tensor behaviour and errors
def test_broadcasting_shapes_and_empty_tensors():
    a = torch.rand(3, 1, 4)
    b = torch.rand(5, 1)
    y = ex.mul(a, b)
    assert y.shape == (3, 5, 4) and torch.equal(y, a * b)
    assert ex.add(torch.tensor(2.0), torch.tensor(3.0)).shape == ()
    e = ex.add(torch.empty(0, 3), torch.empty(0, 3))
    assert e.shape == (0, 3) and e.dtype == torch.float32
    huge = torch.randn(300_000)
    assert torch.equal(ex.add(huge, huge.flip(0)), huge + huge.flip(0))


def test_errors_name_the_problem():
    x = torch.ones(3)
    with pytest.raises(TypeError, match="float32, bfloat16 and float16"):
        ex.add(x.double(), x.double())
    with pytest.raises(TypeError, match="share one dtype"):
        ex.add(x, x.half())
    with pytest.raises(ValueError, match="cannot be broadcast"):
        ex.add(torch.ones(3), torch.ones(4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        ex.add(x, 1.0)
    with pytest.raises(ValueError, match="backend"):
        ex.add(x, x, backend="gpu")
    with pytest.raises(ValueError, match="neuron"):
        ex.add(x, x, noise=0.1)
    with pytest.raises(TypeError, match="int8/int16/int32"):
        ex.from_int(x)
    with pytest.raises(TypeError, match="float32"):
        ex.to_int(torch.ones(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="unknown operation"):
        ex.cost("tan")


def test_costs_are_below_the_seed_counts():
    from isospike.exact.cost import SEED_FP32_NEURONS

    for op, seed in SEED_FP32_NEURONS.items():
        c = ex.cost(op)
        assert 0 < c.neurons < seed, (op, c.neurons, seed)
        assert c.synapses > c.neurons and c.depth > 0
