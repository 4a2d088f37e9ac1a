"""Layers whose arithmetic runs through an ``Arith`` (gate circuits or the float32 reference).

Each :class:`ExactLayer` keeps the original module (``.native``, which owns the parameters)
and computes its output with the pinned algorithms of :mod:`isospike.exact.functions`. When
gradients are needed, the output is the exact value in the forward pass and the native
module's gradient at the same input in the backward pass (a straight-through estimator whose
forward is exact and whose backward is the ideal operation's analytic gradient).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isospike.exact import functions as fn
from isospike.exact.arith import NativeArith
from isospike.exact.counting import ExactCounts, counting

NATIVE = NativeArith()


class _StraightThrough(torch.autograd.Function):
    """Forward: the exact value. Backward: the gradient flows into the native value."""

    @staticmethod
    def forward(ctx, exact: Tensor, native: Tensor) -> Tensor:  # type: ignore[override]
        return exact.clone(memory_format=torch.contiguous_format)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, grad


def straight_through(exact: Tensor, native: Tensor) -> Tensor:
    return _StraightThrough.apply(exact, native)


def _needs_grad(module: nn.Module, args: tuple) -> bool:
    if not torch.is_grad_enabled():
        return False
    return any(isinstance(a, Tensor) and a.requires_grad for a in args) or any(
        p.requires_grad for p in module.parameters()
    )


class ExactLayer(nn.Module):
    """Base class. Subclasses implement ``compute(A, *inputs)`` with the pinned functions.

    Attributes: ``arith`` (the arithmetic used in forward), ``native`` (the original module or
    None), ``last_counts`` (gate activity of the last forward, when counting)."""

    def __init__(self, native: nn.Module | None, arith, count: bool = True) -> None:
        super().__init__()
        self.native = native
        self.arith = arith
        self.count = count and arith.name == "gates"
        self.last_counts: ExactCounts | None = None

    def compute(self, A, *inputs: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, *inputs: Tensor) -> Tensor:
        detached = tuple(x.detach() if isinstance(x, Tensor) else x for x in inputs)
        with torch.no_grad():
            if self.count:
                with counting() as c:
                    y = self.compute(self.arith, *detached)
                self.last_counts = c
            else:
                y = self.compute(self.arith, *detached)
        # one memory layout whatever the arith: gradient kernels of the next layers then
        # reduce in the same order for the gate network and its reference
        y = y.contiguous()
        if _needs_grad(self, inputs):
            y = straight_through(y, self.compute(NATIVE, *inputs))
        return y

    def extra_repr(self) -> str:
        return f"arith={self.arith.name}"


class ExactLinear(ExactLayer):
    """``y = x W^T + b``; products reduced by the pairwise tree, bias added last."""

    def compute(self, A, x):
        m = self.native
        return fn.linear(A, x, m.weight if A.native else m.weight.detach(),
                         None if m.bias is None else (m.bias if A.native else m.bias.detach()))


def _batched_2d(layer: str, compute: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Run ``compute`` (for ``[N, C, H, W]``) on ``x`` of shape [N, C, H, W], or on an unbatched
    [C, H, W] as torch's 2-d layers do (a batch of one, removed again)."""
    if x.dim() == 4:
        return compute(x)
    if x.dim() == 3:
        return compute(x[None])[0]
    raise ValueError(f"{layer} expects a [N, C, H, W] or unbatched [C, H, W] input, got shape {tuple(x.shape)}")


def _unfold_linear(A, x: Tensor, weight: Tensor, bias: Tensor | None, conv: nn.Conv2d) -> Tensor:
    """Convolution as a matrix product over im2col patches (unfold only moves data).
    ``x``: float32 [N, C, H, W]; returns [N, out_channels, H', W']."""
    n, _, h, w = x.shape
    cols = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # [N, C*kh*kw, L]
    out_h = (h + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) // conv.stride[0] + 1
    out_w = (w + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[1] + 1
    y = fn.linear(A, cols.transpose(1, 2), weight.reshape(weight.shape[0], -1), bias)  # [N, L, out]
    return y.transpose(1, 2).reshape(n, weight.shape[0], out_h, out_w)


class ExactConv2d(ExactLayer):
    """2-d convolution (groups = 1, zero padding) as products over im2col patches, each output
    reduced by the pairwise tree in the order (channel, kernel row, kernel column)."""

    def compute(self, A, x):
        m = self.native
        if A.native:
            return m(x)
        bias = None if m.bias is None else m.bias.detach()
        return _batched_2d("Conv2d", lambda xb: _unfold_linear(A, xb, m.weight.detach(), bias, m), x)


class ExactFunction(ExactLayer):
    """A parameter-free function of the pinned library (``fn.<name>``) with fixed kwargs."""

    def __init__(self, name: str, arith, count: bool = True, native: nn.Module | None = None, **kwargs: Any) -> None:
        super().__init__(native, arith, count)
        self.fname = name
        self.kwargs = kwargs

    def compute(self, A, *xs):
        return getattr(fn, self.fname)(A, *xs, **self.kwargs)

    def extra_repr(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.fname}, arith={self.arith.name}" + (f", {extra}" if extra else "")


class ExactElementwise(ExactLayer):
    """An elementwise IEEE operation of the arith (add, sub, mul, div), broadcasting."""

    def __init__(self, op: str, arith, count: bool = True) -> None:
        super().__init__(None, arith, count)
        self.op = op

    def compute(self, A, a, b):
        if not isinstance(a, Tensor):
            a = torch.full_like(b, a)
        if not isinstance(b, Tensor):
            b = torch.full_like(a, b)
        a, b = torch.broadcast_tensors(a, b)
        return getattr(A, self.op)(a, b)

    def extra_repr(self) -> str:
        return f"{self.op}, arith={self.arith.name}"


class ExactMatmul(ExactLayer):
    """``a @ b`` (torch.matmul shapes, including 1-D operands) by products and pairwise trees."""

    def compute(self, A, a, b):
        return fn.matmul(A, a, b)


class ExactLinearFunction(ExactLayer):
    """``F.linear(x, weight, bias)`` with the weight and bias passed as inputs (a functional
    call, e.g. in a subclass of nn.Linear whose forward fx traces into)."""

    def compute(self, A, x, weight, bias=None):
        return fn.linear(A, x, weight, bias)


class ExactLayerNorm(ExactLayer):
    def compute(self, A, x):
        m = self.native
        w = None if m.weight is None else (m.weight if A.native else m.weight.detach())
        b = None if m.bias is None else (m.bias if A.native else m.bias.detach())
        return fn.layer_norm(A, x, m.normalized_shape, w, b, m.eps)


class ExactRMSNorm(ExactLayer):
    def compute(self, A, x):
        m = self.native
        w = None if m.weight is None else (m.weight if A.native else m.weight.detach())
        eps = m.eps if m.eps is not None else torch.finfo(x.dtype).eps
        return fn.rms_norm(A, x, m.normalized_shape, w, eps)


class ExactBatchNorm(ExactLayer):
    """Eval-mode BatchNorm: (x - mean) * (weight * rsqrt(var + eps)) + bias, per channel (dim 1)."""

    def compute(self, A, x):
        m = self.native
        m._check_input_dim(x)  # torch's own shape check: [N, C] / [N, C, L] / [N, C, H, W] ...
        if A.native:
            return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        var = m.running_var.detach().float()
        inv = fn.rsqrt(A, A.add(var, fn.const(var, m.eps)))
        scale = A.mul(inv, m.weight.detach()) if m.weight is not None else inv
        y = A.mul(A.sub(x, m.running_mean.detach().reshape(shape).expand_as(x)), scale.reshape(shape).expand_as(x))
        return A.add(y, m.bias.detach().reshape(shape).expand_as(y)) if m.bias is not None else y


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class ExactPool2d(ExactLayer):
    """Average pooling (pairwise sum of the window / window size, zero padding counted as in
    ``count_include_pad=True``) or max pooling (pairwise maximum, -inf padding)."""

    def __init__(self, native: nn.Module, arith, count: bool = True) -> None:
        super().__init__(native, arith, count)
        self.kind = "max" if isinstance(native, nn.MaxPool2d) else "avg"

    def compute(self, A, x):
        if A.native:
            return self.native(x)
        return _batched_2d(type(self.native).__name__, lambda xb: self._pool(A, xb), x)

    def _pool(self, A, x: Tensor) -> Tensor:
        """``x``: [N, C, H, W] -> [N, C, H', W']."""
        m = self.native
        k, s, p = _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding)
        n, c, h, w = x.shape
        out_h, out_w = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
        if self.kind == "max":
            xp = F.pad(x, (p[1], p[1], p[0], p[0]), value=-math.inf)
            cols = F.unfold(xp, k, 1, 0, s)
        else:
            cols = F.unfold(x, k, 1, p, s)
        cols = cols.reshape(n, c, k[0] * k[1], out_h * out_w).transpose(2, 3)  # [N, C, L, k*k]
        if self.kind == "max":
            y = fn.tree_max(A, cols, -1)
        else:
            s_ = fn.tree_sum(A, cols, -1)
            y = A.div(s_, fn.const(s_, float(k[0] * k[1])))
        return y.reshape(n, c, out_h, out_w)


class ExactAdaptiveAvgPool2d(ExactLayer):
    """Adaptive average pooling when the input divides evenly into the output (uniform windows)."""

    def compute(self, A, x):
        if A.native:
            return self.native(x)
        return _batched_2d("AdaptiveAvgPool2d", lambda xb: self._pool(A, xb), x)

    def _pool(self, A, x: Tensor) -> Tensor:
        """``x``: [N, C, H, W] -> [N, C, oh, ow]."""
        m = self.native
        oh, ow = _pair(m.output_size)
        oh = x.shape[-2] if oh is None else oh
        ow = x.shape[-1] if ow is None else ow
        n, c, h, w = x.shape
        if h % oh or w % ow:
            raise ValueError(f"AdaptiveAvgPool2d: input {h}x{w} does not divide into {oh}x{ow} windows")
        k = (h // oh, w // ow)
        cols = F.unfold(x, k, 1, 0, k).reshape(n, c, k[0] * k[1], oh * ow).transpose(2, 3)
        s_ = fn.tree_sum(A, cols, -1)
        return A.div(s_, fn.const(s_, float(k[0] * k[1]))).reshape(n, c, oh, ow)


ACTIVATIONS: dict[type, Callable[[nn.Module], tuple[str, dict]]] = {
    nn.ReLU: lambda m: ("relu", {}),
    nn.GELU: lambda m: ("gelu", {"approximate": m.approximate}),
    nn.SiLU: lambda m: ("silu", {}),
    nn.Sigmoid: lambda m: ("sigmoid", {}),
    nn.Tanh: lambda m: ("tanh", {}),
    nn.Softmax: lambda m: ("softmax", {"dim": m.dim}),  # None: torch's legacy implicit dimension
}
