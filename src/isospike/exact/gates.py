"""Threshold gates: each gate is ONE integrate-and-fire neuron evaluated for ONE time step
from a membrane at rest (V = 0):

    V = sum_i w_i * s_i          (s_i in {0, 1}: input spikes; w_i: integer synaptic weights)
    spike  iff  V >= theta       (theta half-way between the largest "no" sum and the smallest
                                  "yes" sum, so every decision has a margin of 0.5)

A negative theta is a bias current (the neuron fires with no input, e.g. NOT). Every gate
kind also has a bitwise form used by the bit-sliced backend; ``tests/exact`` checks that the
two agree on every input combination.

Multi-neuron cells reuse these kinds: XOR = AND + XOR_H (2 neurons), full adder = MAJ +
SUM_M (2 neurons), 2:1 multiplexer = AND + MUX_H (2 neurons).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

MASK = (1 << 64) - 1


@dataclass(frozen=True)
class GateKind:
    """A threshold-neuron gate kind.

    code: small integer used by the compiled backends.
    weights: integer synaptic weight of each input (order matters).
    threshold: firing threshold theta (a half-integer).
    bitwise: the same function on integers whose bits are independent lanes.
    symmetric: inputs may be reordered (used to share identical gates).
    """

    name: str
    code: int
    weights: tuple[int, ...]
    threshold: float
    bitwise: Callable[..., int]
    symmetric: bool = False

    @property
    def arity(self) -> int:
        return len(self.weights)

    def fire(self, *spikes: int) -> int:
        """Neuron semantics on 0/1 inputs: 1 iff sum(w s) >= theta."""
        return int(sum(w * s for w, s in zip(self.weights, spikes)) >= self.threshold)

    def truth_table(self) -> int:
        """Bit ``i`` = output for the input combination whose input j is bit j of ``i``."""
        tt = 0
        for i in range(1 << self.arity):
            if self.fire(*[(i >> j) & 1 for j in range(self.arity)]):
                tt |= 1 << i
        return tt


def _k(name, code, weights, threshold, bitwise, symmetric=False) -> GateKind:
    return GateKind(name, code, tuple(weights), float(threshold), bitwise, symmetric)


# Codes are part of the compiled backends' contract: append, never renumber.
KINDS: tuple[GateKind, ...] = (
    _k("NOT", 0, (-1,), -0.5, lambda a: ~a),
    _k("AND", 1, (1, 1), 1.5, lambda a, b: a & b, True),
    _k("OR", 2, (1, 1), 0.5, lambda a, b: a | b, True),
    _k("NAND", 3, (-1, -1), -1.5, lambda a, b: ~(a & b), True),
    _k("NOR", 4, (-1, -1), -0.5, lambda a, b: ~(a | b), True),
    _k("ANDN", 5, (1, -1), 0.5, lambda a, b: a & ~b),  # a AND NOT b
    _k("AND3", 6, (1, 1, 1), 2.5, lambda a, b, c: a & b & c, True),
    _k("OR3", 7, (1, 1, 1), 0.5, lambda a, b, c: a | b | c, True),
    _k("MAJ", 8, (1, 1, 1), 1.5, lambda a, b, c: (a & b) | (c & (a | b)), True),
    # majority with the middle input inverted: carry of a + ~b + c (comparators, subtractors)
    _k("MAJN", 9, (1, -1, 1), 0.5, lambda a, b, c: (a & ~b) | (c & (a | ~b))),
    # second neuron of XOR: h = AND(a, b) -> a XOR b = [a + b - 2h >= 0.5]
    _k("XOR_H", 10, (1, 1, -2), 0.5, lambda a, b, h: (a | b) & ~h),
    # second neuron of XNOR: h = AND(a, b) -> [-a - b + 2h >= -0.5]
    _k("XNOR_H", 11, (-1, -1, 2), -0.5, lambda a, b, h: ~(a | b) | h),
    # full-adder sum: m = MAJ(a, b, c) -> a XOR b XOR c = [a + b + c - 2m >= 0.5]
    _k("SUM_M", 12, (1, 1, 1, -2), 0.5, lambda a, b, c, m: (~m & (a | b | c)) | (m & a & b & c)),
    # parallel-prefix generate: G = g_hi OR (p_hi AND g_lo)
    _k("PREFIX_G", 13, (2, 1, 1), 1.5, lambda g, p, gl: g | (p & gl)),
    # second neuron of a 2:1 multiplexer: h = AND(s, a) -> s ? a : b = [2h + b - s >= 0.5]
    _k("MUX_H", 14, (2, 1, -1), 0.5, lambda h, b, s: h | (b & ~s)),
    _k("AND4", 15, (1, 1, 1, 1), 3.5, lambda a, b, c, d: a & b & c & d, True),
    _k("OR4", 16, (1, 1, 1, 1), 0.5, lambda a, b, c, d: a | b | c | d, True),
)
BY_NAME: dict[str, GateKind] = {k.name: k for k in KINDS}
BY_CODE: dict[int, GateKind] = {k.code: k for k in KINDS}
assert all(BY_CODE[i].code == i for i in range(len(KINDS)))
MAX_ARITY = max(k.arity for k in KINDS)


def _truth_table_of(fn: Callable[..., int], arity: int) -> int:
    tt = 0
    for i in range(1 << arity):
        if fn(*[(i >> j) & 1 for j in range(arity)]):
            tt |= 1 << i
    return tt


def _build_matcher() -> dict[tuple[int, int], tuple[GateKind, tuple[int, ...]]]:
    """(arity, truth table) -> (kind, permutation) such that kind(*[x[p] for p in perm]) is the
    function. Used to rewrite a gate whose inputs were partly constant into a smaller kind."""
    table: dict[tuple[int, int], tuple[GateKind, tuple[int, ...]]] = {}
    for kind in sorted(KINDS, key=lambda k: (k.arity, k.code)):
        for perm in itertools.permutations(range(kind.arity)):
            fn = lambda *x, kind=kind, perm=perm: kind.fire(*[x[p] for p in perm])  # noqa: E731
            table.setdefault((kind.arity, _truth_table_of(fn, kind.arity)), (kind, perm))
    return table


MATCHER = _build_matcher()
