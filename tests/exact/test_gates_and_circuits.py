import itertools
import random

import pytest

from isospike.exact.circuits.arith import (
    add,
    add_const,
    equal,
    greater_equal,
    increment,
    kogge_stone_add,
    mux_word,
    negate,
    ripple_add,
    subtract,
)
from isospike.exact.circuits.multiply import multiply
from isospike.exact.circuits.shift import leading_zeros, shift_left, shift_right_sticky
from isospike.exact.gates import KINDS, MASK
from isospike.exact.netlist import ONE, ZERO, Circuit


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_gate_neuron_equals_its_bitwise_form_on_all_inputs(kind):
    for bits in itertools.product((0, 1), repeat=kind.arity):
        assert kind.fire(*bits) == kind.bitwise(*bits) & 1, (kind.name, bits)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_gate_thresholds_have_half_unit_margins(kind):
    sums = {sum(w * s for w, s in zip(kind.weights, bits)) for bits in itertools.product((0, 1), repeat=kind.arity)}
    yes = min(v for v in sums if v >= kind.threshold)
    no = max(v for v in sums if v < kind.threshold)
    assert yes - kind.threshold == pytest.approx(0.5) and kind.threshold - no == pytest.approx(0.5)


def test_two_neuron_xor_full_adder_and_mux():
    c = Circuit()
    a, b, s, x = (c.input(n, 1)[0] for n in "absx")
    c.output("xor", c.xor(a, b))
    fs, fc = c.full_adder(a, b, x)
    c.output("fa_s", fs)
    c.output("fa_c", fc)
    c.output("mux", c.mux(s, a, b))
    nl = c.build()
    assert nl.cost.neurons == 2 + 2 + 2  # XOR shares nothing with FA (different gates)
    lanes = 16
    ins = {n: [sum(((i >> k) & 1) << i for i in range(lanes))] for k, n in enumerate("absx")}
    out = nl.evaluate_python(ins, lanes)
    for i in range(lanes):
        av, bv, sv, xv = ((i >> k) & 1 for k in range(4))
        assert (out["xor"][0] >> i) & 1 == av ^ bv
        assert (out["fa_s"][0] >> i) & 1 == av ^ bv ^ xv
        assert (out["fa_c"][0] >> i) & 1 == int(av + bv + xv >= 2)
        assert (out["mux"][0] >> i) & 1 == (av if sv else bv)


def test_constant_folding_and_sharing():
    c = Circuit()
    a, b = c.input("a", 1)[0], c.input("b", 1)[0]
    assert c.and_(a, ZERO) == ZERO and c.and_(a, ONE) == a and c.or_(a, ONE) == ONE
    assert c.not_(c.not_(a)) == a
    assert c.and_(a, b) == c.and_(b, a)  # shared
    assert c.maj(a, b, ONE) == c.or_(a, b)  # MAJ with a constant 1 is OR
    s, carry = c.full_adder(a, b, ZERO)  # becomes a half adder
    assert (s, carry) == c.half_adder(a, b)
    assert c.mux(ONE, a, b) == a and c.mux(ZERO, a, b) == b
    assert c.xor(a, a) == ZERO


def lanes_of(values, width):
    """Bit-parallel lane encoding: bit i of output word k = bit k of values[i]."""
    return [sum(((v >> k) & 1) << i for i, v in enumerate(values)) for k in range(width)]


def values_of(words, n):
    return [sum(((w >> i) & 1) << k for k, w in enumerate(words)) for i in range(n)]


def run(nl, inputs: dict, n: int):
    widths = nl.input_widths
    out = nl.evaluate_python({k: lanes_of(v, widths[k]) for k, v in inputs.items()}, n)
    return {k: values_of(v, n) for k, v in out.items()}


def pairs(width, k=None, seed=0):
    allv = range(1 << width)
    combos = list(itertools.product(allv, allv))
    if k is not None and len(combos) > k:
        combos = random.Random(seed).sample(combos, k)
    return [a for a, _ in combos], [b for _, b in combos]


@pytest.mark.parametrize("adder", [ripple_add, kogge_stone_add])
@pytest.mark.parametrize("width", [1, 3, 5])
def test_adders_exhaustive(adder, width):
    c = Circuit()
    a, b, ci = c.input("a", width), c.input("b", width), c.input("ci", 1)
    s, co = adder(c, a, b, ci[0])
    c.output("s", s + [co])
    nl = c.build()
    A, B = pairs(width)
    for cin in (0, 1):
        out = run(nl, {"a": A, "b": B, "ci": [cin] * len(A)}, len(A))["s"]
        assert out == [x + y + cin for x, y in zip(A, B)]


def test_kogge_stone_is_shallower_than_ripple():
    def depth(kind):
        c = Circuit()
        s, co = add(c, c.input("a", 32), c.input("b", 32), kind=kind)
        c.output("s", s + [co])
        return c.build().cost.depth

    assert depth("kogge_stone") < depth("ripple") / 3


def test_subtract_compare_equal_increment_negate():
    w = 5
    c = Circuit()
    a, b = c.input("a", w), c.input("b", w)
    d, ge = subtract(c, a, b)
    c.output("d", d)
    c.output("ge", ge)
    c.output("ge2", greater_equal(c, a, b))
    c.output("eq", equal(c, a, b))
    c.output("inc", increment(c, a)[0])
    c.output("neg", negate(c, a))
    c.output("plus5", add_const(c, a, 5))
    c.output("mux", mux_word(c, b[0], a, b))
    nl = c.build()
    A, B = pairs(w)
    out = run(nl, {"a": A, "b": B}, len(A))
    m = (1 << w) - 1
    assert out["d"] == [(x - y) & m for x, y in zip(A, B)]
    assert out["ge"] == out["ge2"] == [int(x >= y) for x, y in zip(A, B)]
    assert out["eq"] == [int(x == y) for x, y in zip(A, B)]
    assert out["inc"] == [(x + 1) & m for x in A]
    assert out["neg"] == [(-x) & m for x in A]
    assert out["plus5"] == [(x + 5) & m for x in A]
    assert out["mux"] == [x if y & 1 else y for x, y in zip(A, B)]


@pytest.mark.parametrize("width,amount_bits", [(7, 3), (8, 5), (5, 2)])
def test_shifters_with_sticky_exhaustive(width, amount_bits):
    c = Circuit()
    a, k = c.input("a", width), c.input("k", amount_bits)
    r, st = shift_right_sticky(c, a, k)
    c.output("r", r)
    c.output("st", st)
    c.output("l", shift_left(c, a, k))
    nl = c.build()
    A = [x for x in range(1 << width) for _ in range(1 << amount_bits)]
    K = [s for _ in range(1 << width) for s in range(1 << amount_bits)]
    out = run(nl, {"a": A, "k": K}, len(A))
    m = (1 << width) - 1
    assert out["r"] == [x >> s for x, s in zip(A, K)]
    assert out["st"] == [int(x & ((1 << s) - 1) != 0) for x, s in zip(A, K)]
    assert out["l"] == [(x << s) & m for x, s in zip(A, K)]


@pytest.mark.parametrize("width", [1, 2, 5, 8, 11])
def test_leading_zero_counter_exhaustive(width):
    c = Circuit()
    a = c.input("a", width)
    cnt, zero = leading_zeros(c, a)
    c.output("lz", cnt)
    c.output("zero", zero)
    nl = c.build()
    A = list(range(1 << width))
    out = run(nl, {"a": A}, len(A))
    assert out["lz"] == [width - x.bit_length() for x in A]
    assert out["zero"] == [int(x == 0) for x in A]


def test_multiplier_exhaustive_small_and_random_24bit():
    c = Circuit()
    a, b = c.input("a", 5), c.input("b", 4)
    c.output("p", multiply(c, a, b))
    nl = c.build()
    A = [x for x in range(32) for _ in range(16)]
    B = [y for _ in range(32) for y in range(16)]
    assert run(nl, {"a": A, "b": B}, len(A))["p"] == [x * y for x, y in zip(A, B)]

    c = Circuit()
    c.output("p", multiply(c, c.input("a", 24), c.input("b", 24)))
    nl = c.build()
    rng = random.Random(1)
    A = [rng.getrandbits(24) for _ in range(200)] + [(1 << 24) - 1, 0]
    B = [rng.getrandbits(24) for _ in range(200)] + [(1 << 24) - 1, 5]
    assert run(nl, {"a": A, "b": B}, len(A))["p"] == [x * y for x, y in zip(A, B)]
    # 576 partial-product ANDs; 483 FA + 23 HA (2 neurons each) in the Dadda tree; final adder
    assert nl.cost.by_kind["AND"] >= 576


def test_mask_constant():
    assert MASK == (1 << 64) - 1
