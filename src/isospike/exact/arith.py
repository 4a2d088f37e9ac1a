"""Three implementations of the :class:`~isospike.exact.primitives.Arith` protocol, the elementwise
IEEE-754 operations the pinned algorithms of :mod:`isospike.exact.functions` (exp, GELU, softmax,
LayerNorm, matrix products, ...) are written against.

Run with :class:`GateArith` every operation is computed by threshold-gate circuits on spatial-bit
spikes; run with :class:`TorchArith` the same sequence executes as ordinary PyTorch/numpy float32
operations. Each TorchArith operation is the correctly rounded IEEE operation (tests check it
against the circuits bit for bit), so both runs give identical bits: TorchArith is the reference
network. Their operations are not written here: each is the table entry of its primitive
(:mod:`isospike.exact.primitives`), which GateArith runs as a circuit, TorchArith as its reference
and NativeArith as torch's own kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from isospike.exact import ops as gate_ops
from isospike.exact.accumulate import check_accumulate, exact_dot_gates, exact_dot_reference
from isospike.exact.backends import GateOptions
from isospike.exact.formats import canonical_nan as _canonical_nan
from isospike.exact.primitives import Arith, Primitive, ieee_minmax

__all__ = ["Arith", "GateArith", "NativeArith", "TorchArith"]


class TorchArith(Arith):
    """Reference: plain float32 arithmetic (float64 where torch's float32 kernel is not the
    correctly rounded IEEE operation: sqrt; fma and ldexp via exact float64 intermediates).
    Arithmetic results that are NaN are made the canonical quiet NaN, like the circuits'."""

    name = "torch"
    native = False
    shard = False

    def __init__(self, accumulate: str = "pairwise") -> None:
        self.accumulate = check_accumulate(accumulate)

    def run_primitive(self, p: Primitive, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return p.reference(self, *args, **kwargs)

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
            combine = functools.partial(ieee_minmax, minimum=op == "minimum")
        else:
            raise ValueError(f"tree: op must be 'add', 'maximum' or 'minimum', got {op!r}")
        while x.shape[-1] > 1:
            n = x.shape[-1]
            pairs = combine(x[..., 0:n - 1:2], x[..., 1:n:2])
            x = torch.cat([pairs, x[..., n - 1:]], dim=-1) if n % 2 else pairs
        return _canonical_nan(x[..., 0])

    def dot(self, a: Tensor, b: Tensor) -> Tensor:
        """Sum over the last dimension of a * b: products, then the pairwise add tree (with
        accumulate="exact": the correctly rounded sum, :mod:`isospike.exact.accumulate`)."""
        if self.accumulate == "exact":
            return exact_dot_reference(a, b)
        return self.tree("add", a * b)


class GateArith(Arith):
    """Every operation computed by threshold-gate circuits (``isospike.exact`` operations).

    ``backend``, ``leak``, ``noise``, ``noise_model`` and ``generator`` apply to every
    operation (see :mod:`isospike.exact.ops`); they are validated here, once (``api`` names the
    caller in errors), and every operation then runs with the resolved backend."""

    name = "gates"
    native = False

    def __init__(self, backend: str = "bitsliced", api: str = "GateArith", shard: bool = False,
                 accumulate: str = "pairwise", **options: Any) -> None:
        self.options = gate_ops.gate_options(api, dict(backend=backend, **options))
        self.shard = bool(shard)  # matrix products split across torch.distributed ranks
        self.accumulate = check_accumulate(accumulate)  # dot products: "pairwise" tree or "exact" (Kulisch)

    @classmethod
    def using(cls, options: GateOptions, shard: bool = False, accumulate: str = "pairwise") -> GateArith:
        """A GateArith with already validated options."""
        arith = cls.__new__(cls)
        arith.options, arith.shard, arith.accumulate = options, bool(shard), check_accumulate(accumulate)
        return arith

    @property
    def kw(self) -> dict[str, Any]:
        """The options as keywords of the public operations (``backend`` by name)."""
        return self.options.as_kwargs()

    def run_primitive(self, p: Primitive, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs or p.params or len(args) != p.arity:
            operands, params = p.split(args, kwargs)
            return gate_ops.apply(p, operands, params, self.options)
        return gate_ops.apply(p, args, {}, self.options)

    def tree(self, op: str, x: Tensor) -> Tensor:
        """Pairwise-tree reduction of the last dimension (same order and bits as repeated ``op``)."""
        return gate_ops.tree_with(op, x, self.options)

    def dot(self, a: Tensor, b: Tensor) -> Tensor:
        """Sum over the last dimension of a * b: products, then the pairwise add tree (with
        accumulate="exact": Kulisch accumulator circuits, rounded once)."""
        if self.accumulate == "exact":
            return exact_dot_gates(a, b, self.options)
        return gate_ops.dot_with(a, b, self.options)


class NativeArith(TorchArith):
    """Ordinary PyTorch: the pinned functions of :mod:`isospike.exact.functions` dispatch to
    torch's own kernels (torch.exp, F.gelu, F.layer_norm, matmul, ...), and each primitive is
    torch's own operation where one exists (``a + b``, ``torch.sqrt``, ...; else the reference).
    Differentiable: this is the ANN whose gradients the straight-through training of exact
    networks uses, and the "unmodified PyTorch" side of ULP comparisons."""

    name = "native"
    native = True

    def run_primitive(self, p: Primitive, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if p.native is not None:
            return p.native(*args, **kwargs)
        return p.reference(self, *args, **kwargs)
