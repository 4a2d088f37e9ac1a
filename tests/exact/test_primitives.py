"""The table of exact primitives (isospike.exact.primitives): each declaration is a public
operation, a method of every arith, a circuit with a cost on every format and the handler of its
ATen operations; its circuit equals its reference bit for bit. Backends are resolved once."""

import inspect
from typing import get_args, get_type_hints

import numpy as np
import pytest
import torch
from torch import nn

import isospike as isp
import isospike.exact as ex
from isospike.conversion.exact import ExactOptions
from isospike.exact import functions as fn
from isospike.exact import ops
from isospike.exact.arith import GateArith, NativeArith, TorchArith
from isospike.exact.backends import BACKEND_NAMES, BACKENDS, BackendName
from isospike.exact.capture.handlers import HANDLERS
from isospike.exact.formats import format_of
from isospike.exact.primitives import BOOL, FLOAT, INT, INT32, PRIMITIVES, Arith

from .conftest import random_bits

FORMATS = [torch.float32, torch.bfloat16, torch.float16]
N = 4000


def operand(kind, dtype, seed):
    rng = np.random.default_rng(seed)
    if kind is FLOAT:
        width = 32 if dtype == torch.float32 else 16
        bits = random_bits(N, width, seed).astype(np.uint32 if width == 32 else np.uint16)
        return torch.from_numpy(bits.view(np.int32 if width == 32 else np.int16).copy()).view(dtype)
    if kind is BOOL:
        return torch.from_numpy(rng.integers(0, 2, N).astype(bool))
    if kind is INT32:  # ldexp's k: mostly small, some extreme
        k = rng.integers(-400, 400, N)
        k[:50] = rng.integers(-2**31, 2**31, 50)
        return torch.from_numpy(k.astype(np.int32))
    assert kind is INT
    return torch.from_numpy(rng.integers(-2**31, 2**31, N).astype(np.int32))


def bits(t):
    if t.is_floating_point():
        return t.view({torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}[t.dtype])
    return t


# torch rounds twice on the way to bfloat16 from int32 and float64 (through float32; docs/exact.md),
# so the reference is not the IEEE operation there; the pinned models are float32, where it is
DOUBLE_ROUNDED = {("from_int", torch.bfloat16), ("fma", torch.bfloat16)}


@pytest.mark.parametrize("dtype", FORMATS, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_every_primitive_is_its_circuit_and_equals_its_reference(name, dtype):
    p = PRIMITIVES[name]
    xs = [operand(spec.kind, dtype, 10 * i + 1) for i, spec in enumerate(p.operands)]
    params = {"dtype": dtype} if p.params else {}
    G, T = GateArith(), TorchArith()
    with ex.counting() as c:
        y = getattr(G, name)(*xs, **params)
    # the public operation and the method of every arith are the declaration's
    assert torch.equal(bits(getattr(ex, name)(*xs, **params)), bits(y))
    assert torch.equal(bits(ops.apply(p, xs, {**dict(p.params), **params}, ops.gate_options("t", {}))), bits(y))
    want = getattr(T, name)(*xs, **params)
    assert y.dtype == want.dtype and y.shape == want.shape
    if (name, dtype) not in DOUBLE_ROUNDED:
        assert torch.equal(bits(y), bits(want)), name
    args = p.circuit_args(xs, {**dict(p.params), **params})
    if p.netlist(args) is not None:  # counted under the primitive's name (conversions: by formats)
        counted = c.by_op[p.counted(args)]
        assert counted.lanes == N and counted.gate_evaluations == p.netlist(args).n_gates * N
    else:
        assert c.gate_evaluations == 0
    native = getattr(NativeArith(), name)(*xs, **params)  # torch's own kernel where the table names one
    assert torch.equal(bits(native), bits(p.native(*xs, **params) if p.native else want))


def test_the_table_gives_every_operation_signature_cost_and_capture():
    assert list(PRIMITIVES)[:6] == ["add", "sub", "mul", "div", "sqrt", "fma"]
    for name, p in PRIMITIVES.items():
        op = getattr(ex, name)
        assert op is ops.PUBLIC[name] is getattr(ops, name) and name in ex.__all__
        params = list(inspect.signature(op).parameters)
        assert params == [o.name for o in p.operands] + [k for k, _ in p.params] + ["backend", "options"]
        assert op.__doc__.startswith(p.doc.splitlines()[0])
        for cls in (GateArith, TorchArith, NativeArith):
            assert getattr(cls, name) is getattr(Arith, name)  # one method, from the declaration
        for form in p.aten:
            assert all(HANDLERS[aten_op] is not None for aten_op in form.ops)
        for dtype in FORMATS:
            if p.netlist(p.cost_args(format_of(dtype))) is None:
                with pytest.raises(ValueError, match="identity"):
                    ex.cost(name, dtype)
            else:
                c = ex.cost(name, dtype)
                assert sum(c.by_kind.values()) == c.neurons and (c.neurons > 0 or name == "abs")  # abs: wiring


def test_public_operations_take_the_backend_by_position_or_keyword_and_name_an_extra_tensor():
    a, b = torch.randn(70), torch.randn(70)
    assert torch.equal(ex.add(a, b, "torch"), ex.add(a, b, backend="torch"))
    assert torch.equal(ex.from_int(torch.arange(5), torch.float16, "torch"), torch.arange(5).half())
    with pytest.raises(TypeError, match=r"isp\.exact\.sqrt takes 1 tensor \(a\), got 2"):
        ex.sqrt(a, b)
    with pytest.raises(TypeError, match=r"isp\.exact\.fma\(\): missing a required argument: 'c'"):
        ex.fma(a, b)
    with pytest.raises(TypeError, match=r"where: cond must be a bool tensor, got torch\.float32"):
        ex.where(a, a, b)
    with pytest.raises(TypeError, match=r"ldexp: k must be an int32 tensor"):
        ex.ldexp(a, torch.ones(70, dtype=torch.int64))


def test_the_backend_list_is_written_once_and_resolved_at_the_entry():
    assert BACKEND_NAMES == get_args(BackendName) == tuple(BACKENDS) == ("bitsliced", "torch", "triton", "neuron")
    assert get_type_hints(ExactOptions)["backend"] == BackendName  # the exact coding's option
    with pytest.raises(ValueError, match="backend must be 'bitsliced', 'torch', 'triton' or 'neuron', got 'gpu'"):
        GateArith(backend="gpu")
    with pytest.raises(ValueError, match="isp.exact.convert: backend must be"):
        isp.exact.convert(nn.Linear(2, 2), backend="gpu")
    assert GateArith(backend="torch").options.backend is BACKENDS["torch"]
    assert GateArith(backend="neuron", leak=0.5).kw == {"backend": "neuron", "leak": 0.5, "noise": 0.0,
                                                         "noise_model": "synapse", "generator": None}


def test_gate_calls_do_not_validate_their_options_again(monkeypatch):
    """Options are checked where a caller enters (GateArith, convert, a public operation), never
    per gate call: a converted model's forward and a pinned function run without a check."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.LayerNorm(5))
    snn, G = isp.exact.convert(model), GateArith()
    x = torch.randn(3, 6)
    calls = []
    real = ops.gate_options
    monkeypatch.setattr(ops, "gate_options", lambda *a, **k: calls.append(a) or real(*a, **k))
    y = snn(x)
    fn.exp(G, x)
    G.tree("add", x)
    assert calls == []
    assert torch.equal(y.view(torch.int32), isp.exact.reference(model)(x).view(torch.int32))
    ex.add(x, x)
    assert calls == [("isp.exact.add", {"backend": "bitsliced"})]
