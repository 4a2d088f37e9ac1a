"""Integer arithmetic circuits on little-endian bit vectors (lists of wires)."""

from __future__ import annotations

from typing import Literal

from isospike.exact.netlist import ONE, ZERO, Bits, Circuit

AdderKind = Literal["ripple", "kogge_stone"]


def _pad(bits: Bits, width: int) -> Bits:
    return list(bits[:width]) + [ZERO] * (width - len(bits))


def ripple_add(c: Circuit, a: Bits, b: Bits, cin: int = ZERO) -> tuple[Bits, int]:
    """a + b + cin with a chain of full adders (2 neurons per bit). Returns (sum, carry out);
    the sum has max(len(a), len(b)) bits."""
    n = max(len(a), len(b))
    a, b = _pad(a, n), _pad(b, n)
    out, carry = [], cin
    for i in range(n):
        s, carry = c.full_adder(a[i], b[i], carry)
        out.append(s)
    return out, carry


def kogge_stone_add(c: Circuit, a: Bits, b: Bits, cin: int = ZERO) -> tuple[Bits, int]:
    """a + b + cin with a Kogge-Stone parallel-prefix carry network (depth O(log n))."""
    n = max(len(a), len(b))
    a, b = _pad(a, n), _pad(b, n)
    g = [c.and_(a[i], b[i]) for i in range(n)]
    p = [c.gate("XOR_H", a[i], b[i], g[i]) for i in range(n)]  # reuses g as the XOR's AND
    # position -1 carries cin: prefix over [cin, (g0, p0), (g1, p1), ...]
    G = [cin] + g
    P = [ZERO] + p
    dist = 1
    while dist < n + 1:
        G2, P2 = list(G), list(P)
        for i in range(dist, n + 1):
            G2[i] = c.gate("PREFIX_G", G[i], P[i], G[i - dist])
            P2[i] = c.and_(P[i], P[i - dist])
        G, P = G2, P2
        dist *= 2
    carries = G  # carries[i] = carry into bit i (G[0] = cin)
    s = [c.xor(p[i], carries[i]) for i in range(n)]
    return s, carries[n]


def add(c: Circuit, a: Bits, b: Bits, cin: int = ZERO, kind: AdderKind = "ripple") -> tuple[Bits, int]:
    """a + b + cin; ``kind`` picks the adder (ripple: fewest neurons; kogge_stone: least depth)."""
    if kind == "ripple":
        return ripple_add(c, a, b, cin)
    if kind == "kogge_stone":
        return kogge_stone_add(c, a, b, cin)
    raise ValueError(f"unknown adder kind {kind!r}")


def invert(c: Circuit, a: Bits) -> Bits:
    return [c.not_(x) for x in a]


def subtract(c: Circuit, a: Bits, b: Bits, kind: AdderKind = "ripple") -> tuple[Bits, int]:
    """a - b (two's complement, width max(len)); the second value is 1 iff a >= b (unsigned)."""
    n = max(len(a), len(b))
    return add(c, _pad(a, n), invert(c, _pad(b, n)), ONE, kind)


def increment(c: Circuit, a: Bits, inc: int = ONE) -> tuple[Bits, int]:
    """a + inc (inc a single wire): a chain of half adders. Returns (sum, carry out)."""
    out, carry = [], inc
    for x in a:
        s, carry = c.half_adder(x, carry)
        out.append(s)
    return out, carry


def negate(c: Circuit, a: Bits) -> Bits:
    """Two's complement negation, same width."""
    return increment(c, invert(c, a))[0]


def add_const(c: Circuit, a: Bits, value: int, width: int | None = None) -> Bits:
    """a + value (two's complement) truncated to ``width`` bits (default len(a)); constant
    folding turns the adder into the few gates the constant needs."""
    width = len(a) if width is None else width
    return ripple_add(c, _pad(a, width), Circuit.const(value % (1 << width), width))[0]


def greater_equal(c: Circuit, a: Bits, b: Bits) -> int:
    """1 iff a >= b (unsigned): the carry chain of a + ~b + 1, one MAJN neuron per bit."""
    n = max(len(a), len(b))
    a, b = _pad(a, n), _pad(b, n)
    carry = ONE
    for i in range(n):
        carry = c.gate("MAJN", a[i], b[i], carry)
    return carry


def equal(c: Circuit, a: Bits, b: Bits) -> int:
    """1 iff a == b: XNOR per bit, then an AND tree."""
    n = max(len(a), len(b))
    a, b = _pad(a, n), _pad(b, n)
    return c.and_reduce([c.xnor(a[i], b[i]) for i in range(n)])


def is_zero(c: Circuit, a: Bits) -> int:
    return c.not_(c.or_reduce(a))


def mux_word(c: Circuit, s: int, a: Bits, b: Bits) -> Bits:
    """``s ? a : b`` bit by bit (words padded to the longer one)."""
    n = max(len(a), len(b))
    a, b = _pad(a, n), _pad(b, n)
    return [c.mux(s, a[i], b[i]) for i in range(n)]


def and_word(c: Circuit, s: int, a: Bits) -> Bits:
    """Each bit of ``a`` AND ``s`` (``s ? a : 0``)."""
    return [c.and_(s, x) for x in a]


def sign_extend(a: Bits, width: int) -> Bits:
    return list(a[:width]) + [a[-1]] * (width - len(a))


def zero_extend(a: Bits, width: int) -> Bits:
    return _pad(a, width)


def signed_less_than_const(c: Circuit, a: Bits, value: int) -> int:
    """1 iff the two's complement word ``a`` is < ``value``."""
    n = len(a)
    diff, _ = subtract(c, a, Circuit.const(value % (1 << n), n))
    # a - value < 0 (no overflow when value is well inside the range; callers size widths)
    return diff[-1]
