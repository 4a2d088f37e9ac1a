"""Two implementations of one set of elementwise IEEE-754 operations.

The pinned algorithms of :mod:`isospike.exact.functions` (exp, GELU, softmax, LayerNorm,
matrix products, ...) are written once against this interface. Run with :class:`GateArith`
every operation is computed by threshold-gate circuits on spatial-bit spikes; run with
:class:`TorchArith` the same sequence executes as ordinary PyTorch/numpy float32 operations.
Each TorchArith operation is the correctly rounded IEEE operation (tests check it against the
circuits bit for bit), so both runs give identical bits: TorchArith is the reference network.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from isospike.exact import ops as gate_ops
from isospike.exact.formats import canonical_nan as _canonical_nan

_POW_LIMIT = 300  # |k| beyond which x * 2^k is 0 or inf for every float32 x


class TorchArith:
    """Reference: plain float32 arithmetic (float64 where torch's float32 kernel is not the
    correctly rounded IEEE operation: sqrt; fma and ldexp via exact float64 intermediates).
    Arithmetic results that are NaN are made the canonical quiet NaN, like the circuits'."""

    name = "torch"
    native = False

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        return _canonical_nan(a + b)

    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        return _canonical_nan(a - b)

    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        return _canonical_nan(a * b)

    def div(self, a: Tensor, b: Tensor) -> Tensor:
        return _canonical_nan(a / b)

    def neg(self, a: Tensor) -> Tensor:
        return -a

    def abs(self, a: Tensor) -> Tensor:
        return a.abs()

    def sqrt(self, a: Tensor) -> Tensor:
        # torch's float32 sqrt kernel is not correctly rounded; float64 then one rounding is
        # (53 >= 2 * 24 + 2: the double rounding is innocuous for square root)
        return _canonical_nan(torch.sqrt(a.double()).to(a.dtype))

    def fma(self, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
        """a * b + c rounded once: the float64 product is exact; the float64 sum is made
        round-to-odd (TwoSum error term), which makes the final rounding to float32 correct."""
        p = a.double() * b.double()
        z = c.double()
        s = p + z
        bp = s - p
        err = (p - (s - bp)) + (z - bp)
        odd = s.view(torch.int64) & 1
        inexact = (err != 0) & torch.isfinite(s)
        toward = torch.where(err > 0, torch.full_like(s, float("inf")), torch.full_like(s, float("-inf")))
        s = torch.where(inexact & (odd == 0), torch.nextafter(s, toward), s)
        return _canonical_nan(s.to(a.dtype))

    def minimum(self, a: Tensor, b: Tensor) -> Tensor:
        return _ieee_minmax(a, b, minimum=True)

    def tree(self, op: str, x: Tensor) -> Tensor:
        """Pairwise tree over the last dimension (element 2i with 2i+1, an odd last element carried
        up). A NaN anywhere in a sum tree reaches the root, so sums are made canonical once, at
        the end: the same bits as canonicalizing every addition."""
        if x.shape[-1] == 0:
            raise ValueError("cannot reduce an empty dimension")
        combine: Callable[[Tensor, Tensor], Tensor]
        if op == "add":
            combine = torch.add
        elif op in ("maximum", "minimum"):
            combine = functools.partial(_ieee_minmax, minimum=op == "minimum")
        else:
            raise ValueError(f"tree: op must be 'add', 'maximum' or 'minimum', got {op!r}")
        while x.shape[-1] > 1:
            n = x.shape[-1]
            pairs = combine(x[..., 0:n - 1:2], x[..., 1:n:2])
            x = torch.cat([pairs, x[..., n - 1:]], dim=-1) if n % 2 else pairs
        return _canonical_nan(x[..., 0])

    def dot(self, a: Tensor, b: Tensor) -> Tensor:
        """Sum over the last dimension of a * b: products, then the pairwise add tree."""
        return self.tree("add", a * b)

    def maximum(self, a: Tensor, b: Tensor) -> Tensor:
        return _ieee_minmax(a, b, minimum=False)

    def lt(self, a: Tensor, b: Tensor) -> Tensor:
        return a < b

    def le(self, a: Tensor, b: Tensor) -> Tensor:
        return a <= b

    def eq(self, a: Tensor, b: Tensor) -> Tensor:
        return a == b

    def where(self, cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return torch.where(cond, a, b)

    def logical_and(self, a: Tensor, b: Tensor) -> Tensor:
        return a & b

    def logical_or(self, a: Tensor, b: Tensor) -> Tensor:
        return a | b

    def logical_not(self, a: Tensor) -> Tensor:
        return ~a

    def to_int(self, a: Tensor) -> Tensor:
        with np.errstate(invalid="ignore"):
            return torch.from_numpy(a.detach().float().numpy().astype(np.int32))

    def from_int(self, k: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        return k.to(dtype)  # correctly rounded; through float64 int64 values above 2**53 were rounded twice

    def ldexp(self, x: Tensor, k: Tensor) -> Tensor:
        scale = torch.pow(2.0, k.clamp(-_POW_LIMIT, _POW_LIMIT).to(torch.float64))
        return _canonical_nan((x.double() * scale).to(x.dtype))  # exact float64 product, one rounding


def _ieee_minmax(a: Tensor, b: Tensor, minimum: bool) -> Tensor:
    """IEEE 754-2019 minimum/maximum (NaN-propagating, -0 < +0), as the gate circuits."""
    a, b = torch.broadcast_tensors(a, b)
    if minimum:
        pick_b = (b < a) | ((a == 0) & (b == 0) & b.signbit() & ~a.signbit())
    else:
        pick_b = (a < b) | ((a == 0) & (b == 0) & a.signbit() & ~b.signbit())
    y = torch.where(pick_b, b, a)
    return torch.where(torch.isnan(a) | torch.isnan(b), torch.full_like(y, float("nan")).abs(), y)


class GateArith:
    """Every operation computed by threshold-gate circuits (``isospike.exact`` operations).

    ``backend``, ``leak``, ``noise``, ``noise_model`` and ``generator`` are passed to every
    operation (see :mod:`isospike.exact.ops`)."""

    name = "gates"
    native = False

    def __init__(self, backend: str = "bitsliced", api: str = "GateArith", shard: bool = False, **options) -> None:
        self.kw = gate_ops.check_options(api, dict(backend=backend, **options))  # api: named in errors
        self.shard = bool(shard)  # matrix products split across torch.distributed ranks

    def add(self, a, b):
        return gate_ops.add(a, b, **self.kw)

    def sub(self, a, b):
        return gate_ops.sub(a, b, **self.kw)

    def mul(self, a, b):
        return gate_ops.mul(a, b, **self.kw)

    def div(self, a, b):
        return gate_ops.div(a, b, **self.kw)

    def neg(self, a):
        return gate_ops.neg(a, **self.kw)

    def abs(self, a):
        return gate_ops.abs(a, **self.kw)

    def sqrt(self, a):
        return gate_ops.sqrt(a, **self.kw)

    def fma(self, a, b, c):
        return gate_ops.fma(a, b, c, **self.kw)

    def minimum(self, a, b):
        return gate_ops.minimum(a, b, **self.kw)

    def maximum(self, a, b):
        return gate_ops.maximum(a, b, **self.kw)

    def lt(self, a, b):
        return gate_ops.lt(a, b, **self.kw)

    def le(self, a, b):
        return gate_ops.le(a, b, **self.kw)

    def eq(self, a, b):
        return gate_ops.eq(a, b, **self.kw)

    def where(self, cond, a, b):
        return gate_ops.where(cond, a, b, **self.kw)

    def logical_and(self, a, b):
        return gate_ops.logical_and(a, b, **self.kw)

    def logical_or(self, a, b):
        return gate_ops.logical_or(a, b, **self.kw)

    def logical_not(self, a):
        return gate_ops.logical_not(a, **self.kw)

    def to_int(self, a):
        return gate_ops.to_int(a, **self.kw)

    def from_int(self, k, dtype=torch.float32):
        return gate_ops.from_int(k, dtype, **self.kw)

    def ldexp(self, x, k):
        return gate_ops.ldexp(x, k, **self.kw)

    def tree(self, op, x):
        """Pairwise-tree reduction of the last dimension (same order and bits as repeated ``op``)."""
        return gate_ops.tree(op, x, **self.kw)

    def dot(self, a, b):
        """Sum over the last dimension of a * b: products, then the pairwise add tree."""
        return gate_ops.dot(a, b, **self.kw)


class NativeArith(TorchArith):
    """Ordinary PyTorch: the pinned functions of :mod:`isospike.exact.functions` dispatch to
    torch's own kernels (torch.exp, F.gelu, F.layer_norm, matmul, ...). Differentiable: this is
    the ANN whose gradients the straight-through training of exact networks uses, and the
    "unmodified PyTorch" side of ULP comparisons."""

    name = "native"
    native = True

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        return a + b

    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        return a - b

    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        return a * b

    def div(self, a: Tensor, b: Tensor) -> Tensor:
        return a / b

    def minimum(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.minimum(a, b)

    def maximum(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.maximum(a, b)

    def fma(self, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
        return a * b + c

    def sqrt(self, a: Tensor) -> Tensor:
        return torch.sqrt(a)

    def ldexp(self, x: Tensor, k: Tensor) -> Tensor:
        return torch.ldexp(x, k)

    def to_int(self, a: Tensor) -> Tensor:
        return a.to(torch.int32)


Arith = TorchArith | GateArith | NativeArith
