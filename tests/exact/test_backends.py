"""The neuron-level backend against the bit-sliced one; leak, noise and counting."""

import numpy as np
import pytest
import torch

import isospike as isp
import isospike.exact as ex
from isospike.exact.backends import bitsliced, neuron
from isospike.exact.circuits_registry import float_op_netlist
from isospike.exact.gates import BY_NAME
from isospike.exact.netlist import Circuit

from .conftest import f32_from_bits, random_bits


@pytest.mark.parametrize("op", ["add", "mul", "div", "sqrt", "fma"])
def test_noise_free_neuron_backend_equals_bitsliced_for_every_leak(op):
    n = 400
    args = [f32_from_bits(random_bits(n, 32, s).astype(np.uint32)) for s in range(3)]
    arity = {"sqrt": 1, "fma": 3}.get(op, 2)
    ref = getattr(ex, op)(*args[:arity])
    for leak in (0.1, 0.5, 1.0):
        y = getattr(ex, op)(*args[:arity], backend="neuron", leak=leak)
        assert torch.equal(y.view(torch.int32), ref.view(torch.int32)), leak


def test_leak_never_acts_because_each_gate_fires_from_rest():
    # a gate whose input current equals its threshold fires at every leak: V = leak*0 + I
    c = Circuit()
    a, b = c.input("a", 1)[0], c.input("b", 1)[0]
    c.output("y", c.and_(a, b))
    nl = c.build()
    x = {"a": np.array([1, 1, 0, 0], np.uint64), "b": np.array([1, 0, 1, 0], np.uint64)}
    for leak in np.linspace(0.1, 1.0, 10):
        out, _ = neuron.evaluate(nl, x, leak=float(leak))
        assert out["y"].tolist() == [1, 0, 0, 0]


def test_noise_causes_errors_reproducibly_with_a_generator():
    a = f32_from_bits(random_bits(300, 32, 7).astype(np.uint32))
    b = f32_from_bits(random_bits(300, 32, 8).astype(np.uint32))
    clean = ex.add(a, b)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    y1 = ex.add(a, b, backend="neuron", noise=0.3, generator=g1)
    y2 = ex.add(a, b, backend="neuron", noise=0.3, generator=g2)
    assert torch.equal(y1.view(torch.int32), y2.view(torch.int32))
    assert not torch.equal(y1.view(torch.int32), clean.view(torch.int32))
    tiny = ex.add(a, b, backend="neuron", noise=0.01, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tiny.view(torch.int32), clean.view(torch.int32))  # margins of 0.5 >> 0.01


@pytest.mark.parametrize("model", ["synapse", "input", "threshold"])
def test_gate_accuracy_falls_with_noise_under_every_model(model):
    c = Circuit()
    a, b = c.input("a", 1)[0], c.input("b", 1)[0]
    c.output("y", c.xor(a, b))
    nl = c.build()
    n = 20000
    rng = np.random.default_rng(0)
    x = {"a": rng.integers(0, 2, n).astype(np.uint64), "b": rng.integers(0, 2, n).astype(np.uint64)}
    truth = x["a"] ^ x["b"]
    acc = []
    for sigma in (0.0, 0.2, 0.5):
        out, _ = neuron.evaluate(nl, x, noise=sigma, noise_model=model, generator=torch.Generator().manual_seed(1))
        acc.append(float((out["y"] == truth).mean()))
    assert acc[0] == 1.0 and acc[0] >= acc[1] >= acc[2] and acc[2] < 0.99


def test_neuron_backend_rejects_bad_parameters():
    nl = float_op_netlist("add", "float32")
    x = {"a": np.zeros(2, np.uint64), "b": np.zeros(2, np.uint64)}
    with pytest.raises(ValueError, match="leak"):
        neuron.evaluate(nl, x, leak=0.0)
    with pytest.raises(ValueError, match="noise"):
        neuron.evaluate(nl, x, noise=-1)
    with pytest.raises(ValueError, match="noise_model"):
        neuron.evaluate(nl, x, noise=0.1, noise_model="thermal")
    with pytest.raises(ValueError, match="noise"):
        neuron.evaluate(nl, x, noise=float("nan"))


def test_backend_options_are_checked_where_they_are_passed():
    one = torch.ones(2)
    with pytest.raises(ValueError, match=r"isp\.exact\.mul: noise.*nan"):
        isp.exact.mul(one, one, backend="neuron", noise=float("nan"))  # NaN would disable the noise silently
    with pytest.raises(TypeError, match=r"isp\.exact\.mul: generator.*int"):
        isp.exact.mul(one, one, backend="neuron", noise=0.1, generator=3)
    with pytest.raises(TypeError, match=r"isp\.exact\.add\(\).*sigma"):
        isp.exact.add(one, one, sigma=0.1)
    with pytest.raises(TypeError, match=r"isp\.exact\.to_bfloat16\(\).*seed"):
        isp.exact.to_bfloat16(one, seed=0)
    with pytest.raises(TypeError, match=r"isp\.exact\.convert\(\).*sigma"):
        isp.exact.convert(torch.nn.Linear(2, 2), sigma=0.1)
    with pytest.raises(ValueError, match=r"isp\.exact\.convert: noise"):
        isp.exact.convert(torch.nn.Linear(2, 2), backend="neuron", noise=float("inf"))
    # options that act only in the membrane simulation are refused elsewhere, not ignored
    with pytest.raises(ValueError, match="noise_model and generator.*backend='neuron'"):
        isp.exact.add(one, one, noise_model="input")
    with pytest.raises(ValueError, match="noise_model and generator.*backend='neuron'"):
        isp.exact.add(one, one, backend="torch", generator=torch.Generator())
    with pytest.raises(ValueError, match="leak"):
        isp.exact.add(one, one, backend="neuron", leak=True)  # a bool is not a leak factor
    assert torch.equal(isp.exact.add(one, one, backend="neuron", leak=np.float32(0.5)), one + one)  # numpy numbers are fine


def test_counting_is_scoped_and_equal_across_backends():
    a = f32_from_bits(random_bits(1000, 32, 9).astype(np.uint32))
    b = f32_from_bits(random_bits(1000, 32, 10).astype(np.uint32))
    ex.mul(a, b)  # outside any counter: not counted anywhere
    with ex.counting() as c1:
        ex.mul(a, b)
        ex.add(a, b)
    with ex.counting() as c2:
        ex.mul(a, b, backend="neuron")
    assert c1.calls == 2 and set(c1.by_op) == {"mul", "add"}
    m1, m2 = c1.by_op["mul"], c2.by_op["mul"]
    assert m1.spikes == m2.spikes and m1.synaptic_events == m2.synaptic_events
    assert m1.gate_evaluations == ex.cost("mul").neurons * 1000
    assert 0 < m1.spikes < m1.gate_evaluations


def test_bitsliced_spike_count_matches_a_direct_count():
    c = Circuit()
    a, b = c.input("a", 1)[0], c.input("b", 1)[0]
    h = c.and_(a, b)
    c.output("y", c.gate("XOR_H", a, b, h))
    nl = c.build()
    n = 1000
    rng = np.random.default_rng(2)
    av, bv = rng.integers(0, 2, (2, n)).astype(np.uint64)
    _, (spikes, events) = bitsliced.evaluate(nl, {"a": av, "b": bv}, count=True)
    assert spikes == int((av & bv).sum() + (av ^ bv).sum())
    # a and b each drive 2 synapses (AND and XOR_H), h drives 1
    assert events == int(2 * av.sum() + 2 * bv.sum() + (av & bv).sum())


def test_every_gate_kind_through_both_backends():
    for kind in BY_NAME.values():
        c = Circuit()
        ins = [c.input(f"x{i}", 1)[0] for i in range(kind.arity)]
        c.nodes.append(("gate", kind.code, tuple(ins)))  # raw gate, no simplification
        c.output("y", len(c.nodes) - 1)
        nl = c.build()
        n = 1 << kind.arity
        x = {f"x{i}": np.array([(j >> i) & 1 for j in range(n)], np.uint64) for i in range(kind.arity)}
        truth = [kind.fire(*[(j >> i) & 1 for i in range(kind.arity)]) for j in range(n)]
        assert bitsliced.evaluate(nl, x)[0]["y"].tolist() == truth, kind.name
        assert neuron.evaluate(nl, x)[0]["y"].tolist() == truth, kind.name
