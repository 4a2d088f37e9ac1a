"""``accumulate="exact"``: every dot product (matrix products, linear layers, convolutions)
through a Kulisch accumulator and rounded once, i.e. correctly rounded.

Gates (:func:`exact_dot_gates`): each product becomes an exact fixed-point term
(:func:`~isospike.exact.fp.kulisch.build_kulisch_term`), the terms are summed by W-bit integer
adders (a pairwise tree, though the order changes nothing: integer addition is exact), and the
sum is rounded once (:func:`~isospike.exact.fp.kulisch.build_kulisch_round`). Reference
(:func:`exact_dot_reference`): the same exact sum with 32-bit limbs in int64 tensors, rounded
once to nearest even, bit for bit the circuit's result. Specials: any NaN product, or +inf and
-inf together, give NaN; an exact zero sum is +0. Float32 operands (bfloat16/float16 models
widen to float32 first); fewer than 2^21 terms per dot product.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from isospike.exact.backends import GateOptions, bitsliced
from isospike.exact.formats import FLOAT32, FloatFormat
from isospike.exact.fp.kulisch import COUNT_BITS, build_kulisch_add, build_kulisch_round, build_kulisch_term, geometry
from isospike.exact.netlist import Netlist

ACCUMULATE = ("pairwise", "exact")


def check_accumulate(accumulate: str) -> str:
    if accumulate not in ACCUMULATE:
        raise ValueError(f"accumulate must be 'pairwise' (products rounded, then a pairwise tree of additions) or "
                         f"'exact' (a Kulisch accumulator, rounded once), got {accumulate!r}")
    return accumulate


@functools.cache
def netlists(fmt: FloatFormat) -> tuple[Netlist, Netlist, Netlist]:
    """(term, add, round) netlists of ``fmt``, built once."""
    return build_kulisch_term(fmt).build(), build_kulisch_add(fmt).build(), build_kulisch_round(fmt).build()


def _operands(a: Tensor, b: Tensor) -> tuple[torch.Size, int]:
    shape = torch.broadcast_shapes(a.shape, b.shape)
    if len(shape) == 0 or shape[-1] == 0:
        raise ValueError(f"dot needs a last dimension with elements, got shape {tuple(shape)}")
    if a.dtype != torch.float32 or b.dtype != torch.float32:
        raise TypeError(f"accumulate='exact' dot products take float32 operands, got {a.dtype} and {b.dtype}")
    if shape[-1] >= 1 << COUNT_BITS:
        raise ValueError(f"accumulate='exact' sums fewer than 2^{COUNT_BITS} products per dot product, got "
                         f"{shape[-1]}")
    return shape, shape[-1]


def exact_dot_gates(a: Tensor, b: Tensor, options: GateOptions) -> Tensor:
    """Sum over the last dimension of a * b (broadcast), correctly rounded, by the Kulisch
    circuits on the bit-sliced backend (values stay in packed spike lines throughout)."""
    from isospike.exact import ops

    shape, k = _operands(a, b)
    options = options.on(a.device, "isp.exact.dot(accumulate='exact')")
    if options.backend.name != "bitsliced":
        raise ValueError("accumulate='exact' runs on the bit-sliced CPU backend (backend='bitsliced' on CPU tensors); "
                         f"got backend {options.backend.name!r}")
    term, add, rnd = netlists(FLOAT32)
    g = geometry(FLOAT32)
    lead = shape[:-1]
    L = math.prod(lead)
    wl = (L + 63) // 64
    operands = np.empty((64, k * wl), dtype=np.uint64)  # a's spike lines, then b's
    ops.pack_rows(a, shape, 32, operands[:32])
    ops.pack_rows(b, shape, 32, operands[32:])
    block_mask = bitsliced.lane_mask(L) if L else np.zeros(wl, np.uint64)
    terms = ops.run_words(term, "kulisch_term", operands, np.tile(block_mask, k), k * L)
    total = ops.tree_words_of(add, "kulisch_add", g.term, terms, k, wl, L)
    out = ops.run_words(rnd, "kulisch_round", total, block_mask, L)
    return ops._unpack_rows(out, FLOAT32, L, lead, a.device)


# ------------------------------------------------------------------ the reference
LIMB = 32


def _fields(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(sign, effective biased exponent, integer significand, NaN, inf, zero) of float32 values."""
    bits = x.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    sign = bits >> 31
    e = (bits >> 23) & 0xFF
    f = bits & 0x7FFFFF
    m = torch.where(e > 0, f | 0x800000, f)
    return sign, torch.clamp(e, min=1), m, (e == 255) & (f != 0), (e == 255) & (f == 0), (e == 0) & (f == 0)


def _round_limbs(total: int) -> float:
    """The exact sum ``total`` (an integer multiple of 2^-298) rounded once to float32, to
    nearest even (subnormals; overflow to infinity); 0 gives +0."""
    if total == 0:
        return 0.0
    sign = -1.0 if total < 0 else 1.0
    n = abs(total)
    shift = max(n.bit_length() - 24, 149)  # keep 24 bits, or down to 2^-149 (subnormals)
    q, r = n >> shift, n & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if r > half or (r == half and q & 1):
        q += 1
    value = math.ldexp(q, shift - 298)
    return sign * (math.inf if value >= 2.0**128 else value)


def exact_dot_reference(a: Tensor, b: Tensor) -> Tensor:
    """The correctly rounded sum over the last dimension of a * b (float32, broadcast): each
    product is the exact integer Ma Mb shifted by Ea + Eb - 2, summed in 32-bit limbs of int64
    tensors, carried, and rounded once (:func:`_round_limbs`); the circuits' result bit for bit."""
    shape, k = _operands(a, b)
    a, b = a.expand(shape).reshape(-1, k), b.expand(shape).reshape(-1, k)
    sa, ea, ma, na, ia, za = _fields(a)
    sb, eb, mb, nb, ib, zb = _fields(b)
    nan = (na | nb | (ia & zb) | (za & ib)).any(-1)
    inf = (ia | ib) & ~(na | nb | (ia & zb) | (za & ib))
    negative = (sa ^ sb).bool()
    pinf, ninf = (inf & ~negative).any(-1), (inf & negative).any(-1)
    p = ma * mb  # < 2^48: exact in int64
    sh = ea + eb - 2
    limb, off = sh // LIMB, sh % LIMB
    sgn = torch.where(negative, -1, 1)
    n_limbs = geometry(FLOAT32).acc // LIMB + 3
    acc = torch.zeros(a.shape[0], n_limbs, dtype=torch.int64)
    mask = (1 << LIMB) - 1
    lo, hi = (p & mask) << off, (p >> LIMB) << off  # < 2^63 and < 2^47
    for part, at in ((lo & mask, limb), (lo >> LIMB, limb + 1), (hi & mask, limb + 1), (hi >> LIMB, limb + 2)):
        acc.scatter_add_(1, at, sgn * part)
    for j in range(n_limbs - 1):  # carry: every limb in [0, 2^32) but the top one
        carry = acc[:, j] >> LIMB
        acc[:, j] -= carry << LIMB
        acc[:, j + 1] += carry
    rows = acc.tolist()
    out = np.empty(len(rows), dtype=np.float32)
    for i, limbs in enumerate(rows):
        out[i] = _round_limbs(sum(v << (LIMB * j) for j, v in enumerate(limbs)))
    y = torch.from_numpy(out)
    y = torch.where(pinf, torch.full_like(y, math.inf), y)
    y = torch.where(ninf, torch.full_like(y, -math.inf), y)
    y = torch.where(nan | (pinf & ninf), torch.full_like(y, math.nan).abs(), y)
    return y.reshape(shape[:-1])


def dot(arith: Any, a: Tensor, b: Tensor) -> Tensor:
    """The exact dot product on ``arith``'s side (gates or reference)."""
    if arith.name == "gates":
        return exact_dot_gates(a, b, arith.options)
    return exact_dot_reference(a, b)
