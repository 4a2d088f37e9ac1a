"""Unsigned multiplier: AND partial products reduced by a Dadda tree of full and half adders,
then one carry-propagate adder."""

from __future__ import annotations

from isospike.exact.circuits.arith import AdderKind, add
from isospike.exact.netlist import ZERO, Bits, Circuit


def dadda_heights(max_height: int) -> list[int]:
    """Dadda's stage heights d_1 = 2, d_{j+1} = floor(1.5 d_j), below ``max_height``."""
    d = [2]
    while int(d[-1] * 1.5) < max_height:
        d.append(int(d[-1] * 1.5))
    return d


def multiply(c: Circuit, a: Bits, b: Bits, adder: AdderKind = "ripple") -> Bits:
    """Full product a * b (unsigned), len(a) + len(b) bits.

    Returns the product bits. Adder counts of the reduction (for n = m = 24: 483 full adders,
    23 half adders in 7 stages, as in the textbook Dadda tree) are those of the built circuit
    before constant folding."""
    n, m = len(a), len(b)
    width = n + m
    cols: list[list[int]] = [[] for _ in range(width)]
    for i in range(n):
        for j in range(m):
            cols[i + j].append(c.and_(a[i], b[j]))
    heights = dadda_heights(max(len(col) for col in cols))
    for target in reversed(heights):
        new_cols: list[list[int]] = [[] for _ in range(width + 1)]
        carries_in: list[list[int]] = [[] for _ in range(width + 1)]
        for k in range(width):
            col = cols[k] + carries_in[k]
            # reduce column k to `target` bits, counting carries already sent into it
            while len(col) > target:
                excess = len(col) - target
                if excess >= 2:
                    x, y, z = col.pop(0), col.pop(0), col.pop(0)
                    s, cy = c.full_adder(x, y, z)
                else:
                    x, y = col.pop(0), col.pop(0)
                    s, cy = c.half_adder(x, y)
                col.append(s)
                carries_in[k + 1].append(cy)
            new_cols[k] = col
        cols = new_cols[:width]  # a full product never carries out of its top column
    row0 = [col[0] if len(col) > 0 else ZERO for col in cols]
    row1 = [col[1] if len(col) > 1 else ZERO for col in cols]
    product, _ = add(c, row0, row1, kind=adder)
    return product[:width]
