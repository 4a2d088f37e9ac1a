"""Pinned float32 algorithms for the functions IEEE 754 does not fix (exp, erf, GELU, softmax,
LayerNorm, ...) and for reductions and matrix products with a fixed accumulation order.

Each function is written once as a sequence of elementwise IEEE operations on ``A``, an
:class:`~isospike.exact.primitives.Arith` (:class:`~isospike.exact.arith.TorchArith` or
:class:`~isospike.exact.arith.GateArith`). With GateArith every operation is computed by
threshold-gate circuits; with TorchArith the same
sequence runs as plain float32 PyTorch and is the reference: both give identical bits. With
:class:`~isospike.exact.arith.NativeArith` each function is torch's own (differentiable) kernel.

Polynomial coefficients come from ``tools/fit_coefficients.py`` (near-minimax fits, rounded to
float32). Orders are fixed: reductions are pairwise trees (neighbours first, an odd last
element carried to the next level), matrix products multiply every pair then reduce the
products with that tree, then add the bias.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from isospike.exact.primitives import Arith

F32 = torch.float32


def const(x: Tensor, value: float) -> Tensor:
    """A constant spike pattern shaped like ``x`` (constants are wiring, not arithmetic)."""
    return torch.full_like(x, value, dtype=x.dtype)


def _c(value: float) -> Tensor:
    return torch.tensor(value, dtype=F32)


# ---------------------------------------------------------------- reductions
def tree_reduce(A: Arith, op: str, x: Tensor, dim: int = -1) -> Tensor:
    """Reduce ``dim`` with the binary operation ``op`` ("add", "maximum", ...) as a pairwise
    tree: level by level, element 2i combines with 2i+1; an odd last element moves up
    unchanged. ``dim`` is removed."""
    x = x.movedim(dim, -1)
    if x.shape[-1] == 0:
        raise ValueError("cannot reduce an empty dimension")
    return A.tree(op, x)  # the gate circuits keep the values packed between the tree's levels


def tree_levels(A: Arith, op: str, x: Tensor) -> Tensor:
    """The pairwise tree over the last dimension, one ``A.<op>`` call per level (what
    :meth:`Arith.tree` computes; the gate circuits' tree on backends that do not keep values packed)."""
    fn = getattr(A, op)
    while x.shape[-1] > 1:
        n = x.shape[-1]
        pairs = fn(x[..., 0:n - 1:2], x[..., 1:n:2])
        x = torch.cat([pairs, x[..., n - 1:]], dim=-1) if n % 2 else pairs
    return x[..., 0]


def tree_sum(A: Arith, x: Tensor, dim: int = -1) -> Tensor:
    if A.native:
        return x.sum(dim)
    return tree_reduce(A, "add", x, dim)


def tree_max(A: Arith, x: Tensor, dim: int = -1) -> Tensor:
    if A.native:
        return x.amax(dim)
    return tree_reduce(A, "maximum", x, dim)


# ---------------------------------------------------------------- products
MAX_PRODUCTS = 1 << 23  # products held at once (memory bound); chunking does not change results


def matmul(A: Arith, a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` with torch.matmul's shapes: ``a [..., n, k]`` and ``b [..., k, m]`` (batch dims
    broadcast); a 1-D ``a`` [k] is a row and a 1-D ``b`` [k] a column, their dimension removed
    from the result. Every product a_ik * b_kj, then a pairwise tree over k (k = 0 gives +0).
    Work is chunked to bound memory; the chunking does not change any result."""
    if A.native:
        return torch.matmul(a, b)
    if a.dim() == 0 or b.dim() == 0:
        raise ValueError(f"matmul needs operands of at least one dimension, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}; use * to scale by a scalar")
    if A.shard and b.dim() >= 2:  # output columns split across torch.distributed ranks
        from isospike.exact.distributed import sharded_columns

        return sharded_columns(lambda part: _matmul_shapes(A, a, part), b)
    return _matmul_shapes(A, a, b)


def _matmul_shapes(A: Arith, a: Tensor, b: Tensor) -> Tensor:
    row, col = a.dim() == 1, b.dim() == 1
    y = _matmul(A, a[None] if row else a, b[:, None] if col else b)
    if col:
        y = y.squeeze(-1)
    if row:
        y = y.squeeze(-1 if col else -2)
    return y


def _matmul(A: Arith, a: Tensor, b: Tensor) -> Tensor:
    """matmul for ``a [..., n, k]``, ``b [..., k, m]`` (both at least 2-D)."""
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    bt = b.transpose(-1, -2)  # [..., m, k]
    batch = torch.broadcast_shapes(a.shape[:-2], bt.shape[:-2])
    n, k, m = a.shape[-2], a.shape[-1], bt.shape[-2]
    if k == 0 or math.prod(batch) * n * m == 0:
        return a.new_zeros(*batch, n, m)  # empty sums are +0, as torch
    # explicit sizes: reshape(-1, ...) is ambiguous when another dimension is 0
    af = a.expand(*batch, n, k).reshape(math.prod(batch), n, k)
    bf = bt.expand(*batch, m, k).reshape(math.prod(batch), m, k)
    per_batch = n * m * k
    out = []
    if per_batch <= MAX_PRODUCTS:
        step = max(1, MAX_PRODUCTS // per_batch)
        for i in range(0, af.shape[0], step):
            out.append(_sum_products(A, af[i:i + step, :, None, :], bf[i:i + step, None, :, :]))  # [s, n, m]
        y = torch.cat(out, 0)
    else:
        rows = max(1, MAX_PRODUCTS // (m * k))
        for i in range(af.shape[0]):
            parts = [_sum_products(A, af[i, r:r + rows, None, :], bf[i, None, :, :]) for r in range(0, n, rows)]
            out.append(torch.cat(parts, 0))
        y = torch.stack(out, 0)
    return y.reshape(*batch, n, m)


def _sum_products(A: Arith, a: Tensor, b: Tensor) -> Tensor:
    """sum_k a[..., k] * b[..., k] (broadcast): every product, then the pairwise tree over k (the
    gate circuits keep the products packed for the tree)."""
    return A.dot(a, b)


def linear(A: Arith, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` (x ``[..., in]``, weight ``[out, in]``, bias ``[out]``), products
    reduced by the pairwise tree, bias added last. Empty batches and zero-size layers give what
    torch gives (an empty result, or +0 + bias when ``in`` = 0)."""
    if A.native:
        return F.linear(x, weight, bias)
    if weight.dim() != 2:
        raise ValueError(f"linear: weight must be 2-D [out, in], got shape {tuple(weight.shape)}")
    rows = math.prod(x.shape[:-1])
    y = matmul(A, x.reshape(1, rows, x.shape[-1]), weight.t()[None])[0]
    y = y.reshape(*x.shape[:-1], weight.shape[0])
    return A.add(y, bias.expand_as(y)) if bias is not None else y


# ---------------------------------------------------------------- elementary functions
EXP_LO, EXP_HI = -110.0, 100.0  # exp(x) is 0 below, inf above, for every float32
INV_LN2 = 1.4426950216293335  # float32(1/ln 2)
ROUND_MAGIC = 12582912.0  # 1.5 * 2^23: adding it rounds to an integer
LN2_HI = 0.6931471824645996  # float32(ln 2)
LN2_LO = -1.904654290582768e-09  # float32(ln 2 - LN2_HI)
EXP_P = (0.4999999403953552, 0.1666652113199234, 0.04166838899254799, 0.008368715643882751, 0.0013814599951729178)


def exp(A: Arith, x: Tensor) -> Tensor:
    """e^x: k = round(x / ln 2) by the 1.5 * 2^23 trick, r = x - k ln 2 (Cody-Waite, two fmas),
    e^r = 1 + r + r^2 P(r) (degree-4 P, Horner with fma), then 2^k by scaleB (one rounding:
    exact for normal results, correctly placed subnormals). NaN -> NaN, +-inf -> inf / 0."""
    if A.native:
        return torch.exp(x)
    q, kf = _exp_parts(A, x)
    y = A.add(q, const(x, 1.0))
    return A.ldexp(y, A.to_int(kf))


def _exp_parts(A: Arith, x: Tensor) -> tuple[Tensor, Tensor]:
    """(q, k) with e^x = 2^k (1 + q): x clamped to [EXP_LO, EXP_HI], k = round(x / ln 2), r = x - k
    ln 2 (two fmas), q = r + r^2 P(r)."""
    x = A.minimum(A.maximum(x, const(x, EXP_LO)), const(x, EXP_HI))
    t = A.fma(x, const(x, INV_LN2), const(x, ROUND_MAGIC))
    kf = A.sub(t, const(x, ROUND_MAGIC))
    r = A.fma(kf, const(x, -LN2_HI), x)
    r = A.fma(kf, const(x, -LN2_LO), r)
    p = const(x, EXP_P[-1])
    for c in reversed(EXP_P[:-1]):
        p = A.fma(p, r, const(x, c))
    return A.fma(A.mul(r, r), p, r), kf


def expm1(A: Arith, x: Tensor) -> Tensor:
    """e^x - 1 without cancellation: with e^x = 2^k (1 + q) (:func:`exp`'s reduction) and
    t = 2^(k-1), e^x - 1 = 2 fma(t, q, t - 1/2) (t - 1/2 exact for k <= 25; one rounding, then an
    exact doubling; k = 0 gives q itself). expm1(+-0) = +-0."""
    if A.native:
        return torch.expm1(x)
    q, kf = _exp_parts(A, x)
    t = A.ldexp(const(x, 1.0), A.to_int(A.sub(kf, const(x, 1.0))))
    y = A.mul(A.fma(t, q, A.sub(t, const(x, 0.5))), const(x, 2.0))
    return A.where(A.eq(x, const(x, 0.0)), x, y)


def reciprocal(A: Arith, x: Tensor) -> Tensor:
    """1 / x, correctly rounded (one division)."""
    if A.native:
        return torch.reciprocal(x)
    return A.div(const(x, 1.0), x)


def rsqrt(A: Arith, x: Tensor) -> Tensor:
    """1 / sqrt(x): y0 = 1 / sqrt(x) (two correctly rounded operations), then one Newton
    correction with fused operations, y = y0 + (y0 / 2) (1 - x y0^2); zeros, infinities,
    negatives and NaN take y0 (inf, 0, NaN)."""
    if A.native:
        return torch.rsqrt(x)
    y0 = A.div(const(x, 1.0), A.sqrt(x))
    h = A.mul(x, y0)
    e = A.fma(A.neg(h), y0, const(x, 1.0))
    y = A.fma(A.mul(y0, const(x, 0.5)), e, y0)
    finite_pos = A.logical_and(A.lt(const(x, 0.0), x), A.lt(x, const(x, math.inf)))
    return A.where(finite_pos, y, y0)


TANH_SMALL = 0.625
TANH_P = (-0.3333328068256378, 0.13331441581249237, -0.05373971536755562, 0.02063908986747265, -0.005704990588128567)


def tanh(A: Arith, x: Tensor) -> Tensor:
    """tanh: |x| < 0.625: x + x^3 P(x^2); otherwise sign(x) (1 - 2 / (e^(2|x|) + 1))."""
    if A.native:
        return torch.tanh(x)
    a = A.abs(x)
    x2 = A.mul(x, x)
    p = const(x, TANH_P[-1])
    for c in reversed(TANH_P[:-1]):
        p = A.fma(p, x2, const(x, c))
    small = A.fma(A.mul(x, x2), p, x)
    e = exp(A, A.add(a, a))
    big = A.sub(const(x, 1.0), A.div(const(x, 2.0), A.add(e, const(x, 1.0))))
    big = A.where(A.lt(x, const(x, 0.0)), A.neg(big), big)
    return A.where(A.lt(a, const(x, TANH_SMALL)), small, big)


# erf(x) = x (c0 + x^2 P(x^2)) for |x| < 1, c0 = 2/sqrt(pi) as hi + lo
ERF_C0 = (1.128379225730896, -5.8635382771399236e-08)
ERF_SMALL = (-0.376126229763031, 0.11283545196056366, -0.026852061972022057, 0.0051850201562047005,
             -0.0007981635280884802, 7.761406595818698e-05)
# erf(x) = erf(a) + t Q(t), t = |x| - a, on [a, a + 1) for a = 1, 2 and [3, 3.9); erf(a) as hi + lo
ERF_PIECES = (
    (1.0, (0.8427007794380188, 1.35116957622472e-08),
     (0.41510751843452454, -0.41510844230651855, 0.13838545978069305, 0.06904605031013489, -0.06850721687078476,
      0.0025633492041379213, 0.019110165536403656, -0.009627550840377808, 0.0016804470214992762,
      -2.8295404263189994e-05)),
    (2.0, (0.9953222870826721, -2.206371974011745e-08),
     (0.02066698484122753, -0.04133392497897148, 0.048222072422504425, -0.03443662449717522, 0.013043568469583988,
      0.0006157162715680897, -0.003732398385182023, 0.0021243675146251917, -0.0005813026218675077,
      6.718204531352967e-05)),
    (3.0, (0.9999778866767883, 2.282621380800265e-08),
     (0.00013925305393058807, -0.0004177596711087972, 0.0007891123532317579, -0.0010445289080962539,
      0.0010174027411267161, -0.0007415863801725209, 0.00040033593541011214, -0.00015305702982004732,
      3.7248919397825375e-05, -4.3459485823404975e-06)),
)
ERF_ONE = 3.9


def erf(A: Arith, x: Tensor) -> Tensor:
    """erf: |x| < 1: |x| c0 + |x| (c0_lo + x^2 P(x^2)); 1 <= |x| < 3.9: erf(a) + t Q(t) with
    t = |x| - a and the piece (a = 1, 2, 3) selected per element before one shared Horner
    evaluation; |x| >= 3.9: 1; odd symmetry; NaN -> NaN."""
    if A.native:
        return torch.erf(x)
    a = A.abs(x)
    x2 = A.mul(x, x)
    p = const(x, ERF_SMALL[-1])
    for c in reversed(ERF_SMALL[:-1]):
        p = A.fma(p, x2, const(x, c))
    small = A.fma(a, const(x, ERF_C0[0]), A.mul(a, A.fma(p, x2, const(x, ERF_C0[1]))))
    in2 = A.le(const(x, 2.0), a)
    in3 = A.le(const(x, 3.0), a)

    def pick(v1: float, v2: float, v3: float) -> Tensor:
        return A.where(in3, const(x, v3), A.where(in2, const(x, v2), const(x, v1)))

    t = A.sub(a, pick(*(piece[0] for piece in ERF_PIECES)))
    coeffs = list(zip(*(piece[2] for piece in ERF_PIECES)))
    q = pick(*coeffs[-1])
    for cs in reversed(coeffs[:-1]):
        q = A.fma(q, t, pick(*cs))
    hi, lo = (pick(*v) for v in zip(*(piece[1] for piece in ERF_PIECES)))
    big = A.add(hi, A.fma(q, t, lo))
    y = A.where(A.lt(a, const(x, 1.0)), small, big)
    y = A.where(A.le(const(x, ERF_ONE), a), const(x, 1.0), y)
    y = A.where(A.lt(x, const(x, 0.0)), A.neg(y), y)
    return A.where(A.logical_not(A.eq(x, x)), x, y)


SQRT1_2 = 0.7071067690849304  # float32(1/sqrt(2))


def gelu(A: Arith, x: Tensor, approximate: str = "none") -> Tensor:
    """GELU as ``torch.nn.GELU``: 0.5 x (1 + erf(x / sqrt 2)) (the erf form, as x * 0.5 * (1 +
    erf(x * 1/sqrt 2))), or with approximate="tanh" 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if A.native:
        return F.gelu(x, approximate=approximate)
    half_x = A.mul(x, const(x, 0.5))
    if approximate == "none":
        return A.mul(half_x, A.add(erf(A, A.mul(x, const(x, SQRT1_2))), const(x, 1.0)))
    if approximate == "tanh":
        inner = A.mul(const(x, 0.7978845834732056), A.add(x, A.mul(const(x, 0.044715), A.mul(A.mul(x, x), x))))
        return A.mul(half_x, A.add(tanh(A, inner), const(x, 1.0)))
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def sigmoid(A: Arith, x: Tensor) -> Tensor:
    """1 / (1 + e^-x)."""
    if A.native:
        return torch.sigmoid(x)
    return A.div(const(x, 1.0), A.add(const(x, 1.0), exp(A, A.neg(x))))


def silu(A: Arith, x: Tensor) -> Tensor:
    """x / (1 + e^-x)."""
    if A.native:
        return F.silu(x)
    return A.div(x, A.add(const(x, 1.0), exp(A, A.neg(x))))


def relu(A: Arith, x: Tensor) -> Tensor:
    """x < 0 ? +0 : x, as torch.relu (keeps -0 and NaN)."""
    if A.native:
        return torch.relu(x)
    zero = const(x, 0.0)
    return A.where(A.lt(x, zero), zero, x)


def neg(A: Arith, x: Tensor) -> Tensor:
    """-x (flips the sign; NaN keeps its payload)."""
    if A.native:
        return torch.neg(x)
    return A.neg(x)


def implicit_softmax_dim(ndim: int) -> int:
    """The dimension torch's deprecated ``softmax(x)`` without ``dim`` uses (as
    ``torch.nn.functional._get_softmax_dim``): 0 for 0-, 1- and 3-D inputs, else 1."""
    return 0 if ndim in (0, 1, 3) else 1


def softmax(A: Arith, x: Tensor, dim: int | None = -1) -> Tensor:
    """e^(x - max) / sum e^(x - max) along ``dim`` (max and sum by pairwise trees).
    ``dim=None``: torch's legacy implicit dimension (:func:`implicit_softmax_dim`)."""
    if dim is None:
        dim = implicit_softmax_dim(x.dim())
    if A.native:
        return torch.softmax(x, dim)
    if x.numel() == 0:
        return x.clone()
    x = x.movedim(dim, -1)
    m = tree_max(A, x, -1).unsqueeze(-1)
    e = exp(A, A.sub(x, m.expand_as(x)))
    s = tree_sum(A, e, -1).unsqueeze(-1)
    return A.div(e, s.expand_as(e)).movedim(-1, dim)


def _flat_last(x: Tensor, n_dims: int) -> Tensor:
    """``x`` with its last ``n_dims`` dimensions flattened into one (explicit sizes, so that an
    empty batch reshapes too)."""
    lead = x.shape[: x.dim() - n_dims]
    return x.reshape(*lead, math.prod(x.shape[x.dim() - n_dims:]))


def layer_norm(A: Arith, x: Tensor, normalized_shape, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
    """(x - mean) * rsqrt(var + eps) * weight + bias over the trailing ``normalized_shape``;
    mean = sum / n and var = sum((x - mean)^2) / n with pairwise-tree sums. A finite row with
    |x - mean| above ~1.8e19 overflows (x - mean)^2 and gives zeros where torch gives NaN."""
    if A.native:
        return F.layer_norm(x, tuple(normalized_shape), weight, bias, eps)
    nd = len(normalized_shape)
    xf = _flat_last(x, nd)
    n = const(xf[..., :1], float(xf.shape[-1]))
    mean = A.div(tree_sum(A, xf, -1).unsqueeze(-1), n)
    d = A.sub(xf, mean.expand_as(xf))
    var = A.div(tree_sum(A, A.mul(d, d), -1).unsqueeze(-1), n)
    r = rsqrt(A, A.add(var, const(var, eps)))
    y = A.mul(d, r.expand_as(d)).reshape(x.shape)
    if weight is not None:
        y = A.mul(y, weight.expand_as(y))
    if bias is not None:
        y = A.add(y, bias.expand_as(y))
    return y


def rms_norm(A: Arith, x: Tensor, normalized_shape, weight: Tensor | None, eps: float) -> Tensor:
    """x * rsqrt(mean(x^2) + eps) * weight over the trailing ``normalized_shape``."""
    if A.native:
        return F.rms_norm(x, tuple(normalized_shape), weight, eps)
    nd = len(normalized_shape)
    xf = _flat_last(x, nd)
    n = const(xf[..., :1], float(xf.shape[-1]))
    ms = A.div(tree_sum(A, A.mul(xf, xf), -1).unsqueeze(-1), n)
    y = A.mul(xf, rsqrt(A, A.add(ms, const(ms, eps))).expand_as(xf)).reshape(x.shape)
    return A.mul(y, weight.expand_as(y)) if weight is not None else y


# ---------------------------------------------------------------- sin, cos
TWO_OVER_PI = 0.6366197466850281  # float32(2/pi)
PIO2 = (1.5707963705062866, -4.371138828673793e-08, -1.7151245100058819e-15)  # pi/2 = P1 + P2 + P3
SIN_P = (-0.1666666716337204, 0.008333329111337662, -0.00019839312881231308, 2.718121777434135e-06)
COS_P = (0.04166664555668831, -0.0013887316454201937, 2.44331567955669e-05)
TRIG_MAX = 2.0 ** 21  # above |x| = 2^21 (k no longer exact) sin/cos are not meaningful: NaN


def _sin_cos_reduced(A: Arith, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(sin r, cos r, quadrant bits q & 1, q & 2) with x = k pi/2 + r, |r| <= pi/4, q = k mod 4:
    k = round(x 2/pi) by the 1.5 * 2^23 trick, r = x - k (P1 + P2 + P3) by three fmas."""
    t = A.fma(x, const(x, TWO_OVER_PI), const(x, ROUND_MAGIC))
    kf = A.sub(t, const(x, ROUND_MAGIC))
    r = A.fma(A.neg(kf), const(x, PIO2[0]), x)
    r = A.fma(A.neg(kf), const(x, PIO2[1]), r)
    r = A.fma(A.neg(kf), const(x, PIO2[2]), r)
    k = A.to_int(kf)  # the quadrant is k's two low bits: wiring, no arithmetic
    odd, high = (k & 1).bool(), (k & 2).bool()
    r2 = A.mul(r, r)
    p = const(x, SIN_P[-1])
    for c in reversed(SIN_P[:-1]):
        p = A.fma(p, r2, const(x, c))
    s = A.fma(A.mul(r, r2), p, r)
    q = const(x, COS_P[-1])
    for c in reversed(COS_P[:-1]):
        q = A.fma(q, r2, const(x, c))
    c = A.fma(A.mul(r2, r2), q, A.fma(r2, const(x, -0.5), const(x, 1.0)))
    return s, c, odd, high


def _trig_special(A: Arith, x: Tensor, y: Tensor) -> Tensor:
    """NaN for NaN, infinite and too large |x| (where the reduction is not exact)."""
    ok = A.lt(A.abs(x), const(x, TRIG_MAX))
    return A.where(ok, y, const(x, math.nan))


def sin(A: Arith, x: Tensor) -> Tensor:
    """sin x: quadrant 0, 1, 2, 3 of x = k pi/2 + r gives sin r, cos r, -sin r, -cos r (minimax
    polynomials on |r| <= pi/4, tools/fit_coefficients.py). |x| >= 2^21, inf, NaN -> NaN."""
    if A.native:
        return torch.sin(x)
    s, c, odd, high = _sin_cos_reduced(A, x)
    y = A.where(odd, c, s)
    y = A.where(high, A.neg(y), y)
    y = A.where(A.eq(x, const(x, 0.0)), x, y)  # sin(-0) = -0 (the reduction's fmas lose the sign)
    return _trig_special(A, x, y)


def cos(A: Arith, x: Tensor) -> Tensor:
    """cos x: quadrant 0, 1, 2, 3 gives cos r, -sin r, -cos r, sin r (see :func:`sin`)."""
    if A.native:
        return torch.cos(x)
    s, c, odd, high = _sin_cos_reduced(A, x)
    y = A.where(odd, s, c)
    y = A.where(odd ^ high, A.neg(y), y)
    return _trig_special(A, x, y)


# ---------------------------------------------------------------- powers, statistics
def pow_scalar(A: Arith, x: Tensor, exponent: float) -> Tensor:
    """x ** e for the exponents models use: integers |e| <= 16 by repeated multiplication from the
    left (x * x * ... * x; e < 0: 1 / that; e = 0: 1, as torch, even for NaN), e = 0.5: sqrt,
    e = -0.5: rsqrt. Other exponents raise ValueError."""
    if A.native:
        return torch.pow(x, exponent)
    if exponent == 0.5:
        return A.sqrt(x)
    if exponent == -0.5:
        return rsqrt(A, x)
    if float(exponent) != int(exponent) or abs(exponent) > 16:
        raise ValueError(f"pow: the exponent {exponent!r} has no pinned algorithm (integers |e| <= 16, 0.5 and -0.5 "
                         "do); rewrite it with exp or multiplications")
    e = int(exponent)
    if e == 0:
        return const(x, 1.0)
    y = x
    for _ in range(abs(e) - 1):
        y = A.mul(y, x)
    return A.div(const(x, 1.0), y) if e < 0 else y


def _reduce_dims(x: Tensor, dims) -> tuple[Tensor, list[int]]:
    """``x`` with the reduced ``dims`` (None or []: all) moved last and flattened into one (their
    row-major order), and the dims normalized."""
    nd = x.dim()
    dims = list(range(nd)) if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0) else \
        [d % max(nd, 1) for d in ([dims] if isinstance(dims, int) else dims)]
    keep = [d for d in range(nd) if d not in dims]
    moved = x.permute(*keep, *sorted(dims)) if nd else x.reshape(1)
    lead = [x.shape[d] for d in keep]
    return moved.reshape(*lead, math.prod(x.shape[d] for d in dims) if nd else 1), sorted(dims)


def _keepdim(y: Tensor, x: Tensor, dims: list[int], keepdim: bool) -> Tensor:
    if not keepdim or x.dim() == 0:
        return y
    shape = [1 if d in dims else s for d, s in enumerate(x.shape)]
    return y.reshape(shape)


def sum_dims(A: Arith, x: Tensor, dims=None, keepdim: bool = False) -> Tensor:
    """Sum over ``dims`` (flattened in row-major order) by the pairwise tree; an empty sum is +0."""
    flat, dims = _reduce_dims(x, dims)
    y = tree_sum(A, flat, -1) if flat.shape[-1] else flat.new_zeros(flat.shape[:-1])
    return _keepdim(y, x, dims, keepdim)


def mean_dims(A: Arith, x: Tensor, dims=None, keepdim: bool = False) -> Tensor:
    """Pairwise-tree sum over ``dims`` divided by their size (NaN for an empty reduction, as torch)."""
    flat, dims = _reduce_dims(x, dims)
    n = flat.shape[-1]
    s = tree_sum(A, flat, -1) if n else flat.new_zeros(flat.shape[:-1])
    y = A.div(s, const(s, float(n)))
    return _keepdim(y, x, dims, keepdim)


def var_dims(A: Arith, x: Tensor, dims=None, correction: float = 1.0, keepdim: bool = False) -> Tensor:
    """sum((x - mean)^2) / (N - correction) over ``dims`` (pairwise trees), as torch.var."""
    flat, dims = _reduce_dims(x, dims)
    n = flat.shape[-1]
    mean = A.div(tree_sum(A, flat, -1), const(flat[..., 0], float(n))) if n else flat.new_full(flat.shape[:-1], math.nan)
    d = A.sub(flat, mean.unsqueeze(-1).expand_as(flat))
    ss = tree_sum(A, A.mul(d, d), -1) if n else mean.clone()
    y = A.div(ss, const(ss, max(n - correction, 0.0)))
    return _keepdim(y, x, dims, keepdim)


def extreme_dims(A: Arith, x: Tensor, dims=None, keepdim: bool = False, largest: bool = True) -> Tensor:
    """Maximum (or minimum) over ``dims`` by the pairwise tree of IEEE maximum/minimum (NaN wins)."""
    flat, dims = _reduce_dims(x, dims)
    y = tree_reduce(A, "maximum" if largest else "minimum", flat, -1)
    return _keepdim(y, x, dims, keepdim)


def arg_extreme(A: Arith, x: Tensor, dim: int, largest: bool = True) -> tuple[Tensor, Tensor]:
    """(values, indices) of the maximum (minimum) along ``dim`` as torch.max(x, dim): a pairwise
    tree of comparisons; a pair keeps its left element unless the right one is strictly larger
    (smaller) or NaN while the left is not, so the first maximum wins and NaN counts as largest."""
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("cannot reduce an empty dimension")
    idx = torch.arange(n, device=x.device).expand(x.shape).contiguous()
    while x.shape[-1] > 1:
        m = x.shape[-1]
        left, right = x[..., 0:m - 1:2], x[..., 1:m:2]
        beats = A.lt(left, right) if largest else A.lt(right, left)
        nan_right = A.logical_and(A.logical_not(A.eq(right, right)), A.eq(left, left))
        take = A.logical_or(beats, nan_right)
        vals = A.where(take, right, left)
        ids = torch.where(take, idx[..., 1:m:2], idx[..., 0:m - 1:2])
        if m % 2:
            vals, ids = torch.cat([vals, x[..., m - 1:]], -1), torch.cat([ids, idx[..., m - 1:]], -1)
        x, idx = vals, ids
    return x[..., 0], idx[..., 0]


def layer_norm_stats(A: Arith, x: Tensor, normalized_shape, weight: Tensor | None, bias: Tensor | None,
                     eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`layer_norm` and its statistics (mean, 1/sqrt(var + eps)), each shaped
    ``x.shape[:-len(normalized_shape)] + (1,) * len(normalized_shape)`` as aten.native_layer_norm."""
    nd = len(normalized_shape)
    xf = _flat_last(x, nd)
    n = const(xf[..., :1], float(xf.shape[-1]))
    mean = A.div(tree_sum(A, xf, -1).unsqueeze(-1), n)
    d = A.sub(xf, mean.expand_as(xf))
    var = A.div(tree_sum(A, A.mul(d, d), -1).unsqueeze(-1), n)
    r = rsqrt(A, A.add(var, const(var, eps)))
    y = A.mul(d, r.expand_as(d)).reshape(x.shape)
    if weight is not None:
        y = A.mul(y, weight.expand_as(y))
    if bias is not None:
        y = A.add(y, bias.expand_as(y))
    stat_shape = tuple(x.shape[: x.dim() - nd]) + (1,) * nd
    return y, mean.reshape(stat_shape), r.reshape(stat_shape)



# ---------------------------------------------------------------- logarithms
SQRT2 = 1.4142135381698608  # float32(sqrt 2)
LOG_LN2_HI = 0.693138122558593750  # 0x3f317180: ln 2 with its low bits zero
LOG_LN2_LO = 9.0580006144591607e-06  # 0x3717f7d1
LOG_LG = (0.66666662693023681640625, 0.400009721517562866210938, 0.284987866878509521484375,
          0.242790788412094116210938)  # musl/fdlibm logf: log(1+f) = f - f^2/2 + s(f^2/2 + R(s^2)), s = f/(2+f)


def _log_core(A: Arith, f: Tensor, dk: Tensor, c: Tensor | None) -> Tensor:
    """log(2^k (1 + f)) + c for 1 + f in [sqrt(2)/2, sqrt(2)] (fdlibm's logf kernel):
    s = f / (2 + f), R = z (Lg1 + w Lg3) + w (Lg2 + w Lg4) with z = s^2, w = z^2, then
    s (f^2/2 + R) + (k ln2_lo + c) - f^2/2 + f + k ln2_hi, left to right."""
    s = A.div(f, A.add(f, const(f, 2.0)))
    z = A.mul(s, s)
    w = A.mul(z, z)
    t1 = A.mul(w, A.fma(w, const(f, LOG_LG[3]), const(f, LOG_LG[1])))
    t2 = A.mul(z, A.fma(w, const(f, LOG_LG[2]), const(f, LOG_LG[0])))
    r = A.add(t2, t1)
    hfsq = A.mul(A.mul(f, const(f, 0.5)), f)
    lo = A.mul(dk, const(f, LOG_LN2_LO))
    if c is not None:
        lo = A.add(lo, c)
    y = A.add(A.mul(s, A.add(hfsq, r)), lo)
    y = A.add(A.sub(y, hfsq), f)
    return A.add(y, A.mul(dk, const(f, LOG_LN2_HI)))


def _log_reduce(A: Arith, x: Tensor) -> tuple[Tensor, Tensor]:
    """(f, k) with x = 2^k (1 + f), 1 + f in [sqrt(2)/2, sqrt(2)] (exact: logB, the significand, a
    halving and Sterbenz' exact subtraction), for finite positive x."""
    k = A.logb(x)
    m = A.significand(x)
    big = A.lt(const(x, SQRT2), m)
    m = A.where(big, A.mul(m, const(x, 0.5)), m)
    k = A.where(big, A.add(k, const(x, 1.0)), k)
    return A.sub(m, const(x, 1.0)), k


def _log_specials(A: Arith, x: Tensor, y: Tensor, at_zero: float = -math.inf, below: float = 0.0) -> Tensor:
    """log's special values: x == below -> at_zero (-inf), x < below -> NaN, +inf -> +inf, NaN -> NaN."""
    y = A.where(A.eq(x, const(x, below)), const(x, at_zero), y)
    y = A.where(A.eq(x, const(x, math.inf)), x, y)
    bad = A.logical_or(A.lt(x, const(x, below)), A.logical_not(A.eq(x, x)))
    return A.where(bad, const(x, math.nan), y)


def log(A: Arith, x: Tensor) -> Tensor:
    """Natural logarithm: x = 2^k m (logB and significand: exact, subnormals included), m in
    [sqrt(2)/2, sqrt(2)], then fdlibm's logf kernel (:func:`_log_core`). log(+-0) = -inf, x < 0:
    NaN, log(inf) = inf, log(1) = +0."""
    if A.native:
        return torch.log(x)
    f, k = _log_reduce(A, x)
    return _log_specials(A, x, _log_core(A, f, k, None))


def log1p(A: Arith, x: Tensor) -> Tensor:
    """log(1 + x): u = 1 + x rounded, its exact rounding error c (Fast2Sum on the larger of 1 and
    |x| first) corrects the logarithm by c / u (fdlibm's log1pf); where 1 + x lies in
    [sqrt(2)/2, sqrt(2)) the kernel takes f = x itself; |x| < 2^-24 gives x (-0 kept)."""
    if A.native:
        return torch.log1p(x)
    one = const(x, 1.0)
    u = A.add(x, one)
    f, k = _log_reduce(A, u)
    small_x = A.le(A.abs(x), one)
    err = A.where(small_x, A.sub(x, A.sub(u, one)), A.sub(one, A.sub(u, x)))
    c = A.div(err, u)
    c = A.where(A.lt(k, const(x, 25.0)), c, const(x, 0.0))  # beyond 2^25 the correction is below an ulp
    near = A.logical_and(A.le(const(x, SQRT2 / 2 - 1), x), A.lt(x, const(x, SQRT2 - 1)))
    f = A.where(near, x, f)
    k = A.where(near, const(x, 0.0), k)
    c = A.where(near, const(x, 0.0), c)
    y = _log_core(A, f, k, c)
    y = A.where(A.lt(A.abs(x), const(x, 2.0**-24)), x, y)
    return _log_specials(A, x, y, -math.inf, -1.0)


def log_softmax(A: Arith, x: Tensor, dim: int = -1) -> Tensor:
    """(x - max) - log(sum e^(x - max)) along ``dim`` (max and sum by pairwise trees)."""
    if A.native:
        return torch.log_softmax(x, dim)
    if x.numel() == 0:
        return x.clone()
    x = x.movedim(dim, -1)
    m = tree_max(A, x, -1).unsqueeze(-1)
    d = A.sub(x, m.expand_as(x))
    s = tree_sum(A, exp(A, d), -1).unsqueeze(-1)
    return A.sub(d, log(A, s).expand_as(d)).movedim(-1, dim)


def softplus(A: Arith, x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """torch's softplus: x where beta x > threshold, else log1p(e^(beta x)) / beta (beta = 1: no
    scaling operations)."""
    if A.native:
        return F.softplus(x, beta, threshold)
    bx = x if beta == 1 else A.mul(x, const(x, beta))
    y = log1p(A, exp(A, bx))
    if beta != 1:
        y = A.div(y, const(x, beta))
    return A.where(A.lt(const(x, threshold), bx), x, y)


# ---------------------------------------------------------------- powers with a tensor exponent
def _signbit(A: Arith, x: Tensor) -> Tensor:
    """x's sign bit as a bool tensor (-0 included): x < 0, or x == 0 and 1/x < 0."""
    zero = const(x, 0.0)
    return A.logical_or(A.lt(x, zero), A.logical_and(A.eq(x, zero), A.lt(A.div(const(x, 1.0), x), zero)))


def pow_tensor(A: Arith, x: Tensor, y: Tensor) -> Tensor:
    """x ** y (tensors, broadcast) as e^(y log|x|) with C99/torch special cases: x < 0 with an
    integer y takes the sign of x^y (odd y: negative), with another finite y gives NaN;
    x^(+-0) = 1 and 1^y = 1 for every y (NaN included); (-1)^(+-inf) = 1. The error grows with
    |y log x| (log's relative error is multiplied by it): about |y ln x| / 2 ULP beyond exp's."""
    if A.native:
        return torch.pow(x, y)
    x, y = torch.broadcast_tensors(x, y)
    ax = A.abs(x)
    r = exp(A, A.mul(y, log(A, ax)))
    ay = A.abs(y)
    yi = A.to_int(y)  # exact for |y| < 2^31; the parity is its lowest bit (wiring)
    integral = A.logical_or(A.le(const(y, 2.0**24), ay), A.eq(y, A.from_int(yi, y.dtype)))
    odd = A.logical_and((yi & 1).bool(), A.lt(ay, const(y, 2.0**24)))
    negative = _signbit(A, x)
    r = A.where(A.logical_and(negative, odd), A.neg(r), r)
    finite_y = A.lt(ay, const(y, math.inf))
    negative_finite = A.logical_and(A.lt(x, const(x, 0.0)), A.lt(const(x, -math.inf), x))
    invalid = A.logical_and(A.logical_and(negative_finite, A.logical_not(integral)), finite_y)
    r = A.where(invalid, const(x, math.nan), r)
    one = A.logical_or(A.eq(y, const(y, 0.0)), A.eq(x, const(x, 1.0)))
    one = A.logical_or(one, A.logical_and(A.eq(x, const(x, -1.0)), A.logical_not(finite_y)))
    one = A.logical_and(one, A.logical_not(A.logical_and(A.logical_not(A.eq(y, y)), A.logical_not(A.eq(x, const(x, 1.0))))))
    return A.where(one, const(x, 1.0), r)


# ---------------------------------------------------------------- scans and sorting
def cumsum(A: Arith, x: Tensor, dim: int) -> Tensor:
    """Running sums along ``dim`` in sequential order: y_0 = x_0, y_i = y_(i-1) + x_i (one
    addition per element; torch's CPU kernel accumulates in float64, so native results may
    differ in the last bit on long scans)."""
    if A.native:
        return torch.cumsum(x, dim)
    x = x.movedim(dim, -1)
    if x.shape[-1] == 0:
        return x.clone().movedim(-1, dim)
    out = [x[..., 0]]
    for i in range(1, x.shape[-1]):
        out.append(A.add(out[-1], x[..., i]))
    return torch.stack(out, -1).movedim(-1, dim)


def _merge_rounds(n: int) -> list[tuple[list[int], list[int]]]:
    """Batcher's odd-even merge sort network for n elements (any n): rounds of disjoint
    compare-exchange pairs (lo, hi), lo < hi."""
    rounds = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            lo, hi = [], []
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        lo.append(i + j)
                        hi.append(i + j + k)
            if lo:
                rounds.append((lo, hi))
            k //= 2
        p *= 2
    return rounds


def sort(A: Arith, x: Tensor, dim: int = -1, descending: bool = False) -> tuple[Tensor, Tensor]:
    """(values, indices) of a stable sort along ``dim``: NaN counts as the largest value, +0 and -0
    as equal, equal values keep their order (torch.sort(stable=True); for the orders torch leaves
    open -- stable=False on more than 16 elements, topk among equal values -- this is one of the
    orders it allows). Batcher's odd-even merge network: every comparator is two ``lt`` circuits
    on the pair (the NaN flags and the index comparison of a tie are wiring); the indices move
    through the network and the values are gathered by them at the end (data movement)."""
    if A.native:
        return torch.sort(x, dim=dim, descending=descending, stable=True)
    xm = x.movedim(dim, -1)
    n = xm.shape[-1]
    idx = torch.arange(n, device=x.device).expand(xm.shape).contiguous()
    if n > 1:
        nan = A.logical_not(A.eq(xm, xm))
        v = xm
        for lo, hi in _merge_rounds(n):
            lo_t, hi_t = torch.tensor(lo, device=x.device), torch.tensor(hi, device=x.device)
            va, vb = v[..., lo_t], v[..., hi_t]
            na, nb = nan[..., lo_t], nan[..., hi_t]
            ia, ib = idx[..., lo_t], idx[..., hi_t]
            a_lt_b, b_lt_a = A.lt(va, vb), A.lt(vb, va)
            # b goes first when it is larger (descending) / smaller, or NaN against a number
            # (descending) / a number against NaN, or on a tie (equal, or both NaN) from further left
            b_first = A.logical_or(a_lt_b, A.logical_and(nb, A.logical_not(na))) if descending else \
                A.logical_or(b_lt_a, A.logical_and(na, A.logical_not(nb)))
            differ = A.logical_or(A.logical_or(a_lt_b, b_lt_a), A.logical_not(A.logical_or(
                A.logical_and(na, nb), A.logical_not(A.logical_or(na, nb)))))
            swap = A.logical_or(b_first, A.logical_and(A.logical_not(differ), ib < ia))
            order = torch.arange(n, device=x.device).expand(xm.shape).clone()
            order[..., lo_t] = torch.where(swap, hi_t, lo_t)
            order[..., hi_t] = torch.where(swap, lo_t, hi_t)
            v, nan, idx = v.gather(-1, order), nan.gather(-1, order), idx.gather(-1, order)
    values = xm.gather(-1, idx)
    return values.movedim(-1, dim), idx.movedim(-1, dim)


def topk(A: Arith, x: Tensor, k: int, dim: int = -1, largest: bool = True) -> tuple[Tensor, Tensor]:
    """The first ``k`` of the stable :func:`sort` (descending when ``largest``): values sorted,
    equal values in their original order."""
    if A.native:
        return torch.topk(x, k, dim, largest)
    values, indices = sort(A, x, dim, descending=largest)
    return values.narrow(dim, 0, k), indices.narrow(dim, 0, k)


# ---------------------------------------------------------------- group and batch statistics
def group_norm(A: Arith, x: Tensor, groups: int, weight: Tensor | None, bias: Tensor | None,
               eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """GroupNorm of ``x`` [N, C, *]: per (sample, group) the pairwise-tree mean and variance over
    its C/groups channels and every position (row-major), (x - mean) * rsqrt(var + eps), then
    * weight[c] + bias[c]. Returns (y, mean, rstd) with mean/rstd [N, groups], as
    aten.native_group_norm."""
    n, c = x.shape[0], x.shape[1]
    xg = x.reshape(n, groups, (c // groups) * math.prod(x.shape[2:]))
    y, mean, rstd = layer_norm_stats(A, xg, [xg.shape[-1]], None, None, eps)
    y = y.reshape(x.shape)
    shape = (1, c) + (1,) * (x.dim() - 2)
    if weight is not None:
        y = A.mul(y, weight.reshape(shape).expand_as(y))
    if bias is not None:
        y = A.add(y, bias.reshape(shape).expand_as(y))
    return y, mean.reshape(n, groups), rstd.reshape(n, groups)


def batch_stats(A: Arith, x: Tensor) -> tuple[Tensor, Tensor, int]:
    """Per channel (dim 1) of ``x`` [N, C, *]: (mean, biased variance, count) over the batch and
    every position, by pairwise trees (row-major over (N, *) ), as BatchNorm in training mode
    and InstanceNorm (which torch runs as a batch norm over N * C channels)."""
    c = x.shape[1]
    xc = x.transpose(0, 1).reshape(c, -1)
    count = xc.shape[-1]
    n = const(xc[:, 0], float(count))
    mean = A.div(tree_sum(A, xc, -1), n)
    d = A.sub(xc, mean.unsqueeze(-1).expand_as(xc))
    var = A.div(tree_sum(A, A.mul(d, d), -1), n)
    return mean, var, count
