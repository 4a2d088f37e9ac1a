"""backend="torch": the bit-sliced gate evaluation in plain PyTorch (any device). On CPU it must
give the numba backend's bits and counts exactly; CUDA runs are checked where a GPU exists."""

import math

import pytest
import torch
from torch import nn

import isospike as isp
from isospike.exact import counting, ops


def bits(t):
    return t.contiguous().view(torch.int32 if t.dtype == torch.float32 else torch.int16)


def operands(n=3000, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, generator=g).to(dtype)
    b = (torch.randn(n, generator=g) * 1e3).to(dtype)
    specials = torch.tensor([math.nan, math.inf, -math.inf, -0.0, 0.0, 1e-40, 3e38, -1e-45]).to(dtype)
    a[: len(specials)] = specials
    b[3: 3 + len(specials)] = specials
    return a, b


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "minimum", "maximum"])
def test_binary_operations_equal_the_numba_backend(op, dtype):
    a, b = operands(dtype=dtype)
    f = getattr(ops, op)
    assert torch.equal(bits(f(a, b, backend="torch")), bits(f(a, b)))


def test_unary_ternary_comparisons_conversions_and_counts():
    a, b = operands()
    assert torch.equal(bits(ops.fma(a, b, a, backend="torch")), bits(ops.fma(a, b, a)))
    assert torch.equal(bits(ops.sqrt(b.abs(), backend="torch")), bits(ops.sqrt(b.abs())))
    for cmp in ("lt", "le", "eq"):
        assert torch.equal(getattr(ops, cmp)(a, b, backend="torch"), getattr(ops, cmp)(a, b))
    assert torch.equal(ops.to_int(b, backend="torch"), ops.to_int(b))
    k = torch.arange(-70000, 70000, 47, dtype=torch.int64)
    assert torch.equal(bits(ops.from_int(k, backend="torch")), bits(ops.from_int(k)))
    assert torch.equal(bits(ops.to_bfloat16(b, backend="torch")), bits(ops.to_bfloat16(b)))
    assert torch.equal(bits(ops.where(a > b, a, b, backend="torch")), bits(ops.where(a > b, a, b)))
    with counting() as numba_counts:
        ops.mul(a, b)
    with counting() as torch_counts:
        ops.mul(a, b, backend="torch")
    assert (torch_counts.spikes, torch_counts.synaptic_events, torch_counts.gate_evaluations) == \
        (numba_counts.spikes, numba_counts.synaptic_events, numba_counts.gate_evaluations)
    assert ops.add(a[:0], b[:0], backend="torch").shape == (0,)
    with pytest.raises(ValueError, match="backend='neuron'"):
        ops.add(a, b, backend="torch", noise=0.1)


def test_a_whole_model_on_the_torch_backend_equals_the_reference():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.GELU(), nn.LayerNorm(6), nn.Linear(6, 2)).eval()
    x = torch.randn(3, 5)
    y = isp.exact.convert(model, backend="torch")(x)
    assert torch.equal(bits(y), bits(isp.exact.reference(model)(x)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_stay_on_the_device_and_give_the_cpu_bits():
    a, b = operands()
    y = ops.mul(a.cuda(), b.cuda(), backend="torch")
    assert y.is_cuda and torch.equal(bits(y.cpu()), bits(ops.mul(a, b)))


def test_nested_counters_with_equal_totals_leave_in_the_right_order():
    # two counters with equal totals compare equal: leaving the inner block must not take out the outer
    a = torch.ones(4)
    with counting() as outer:
        with counting() as inner:
            pass
        ops.add(a, a)
    assert outer.calls == 1 and inner.calls == 0
    with counting() as again:
        ops.add(a, a)
    assert again.calls == 1 and outer.calls == 1
