"""The spike nonlinearity with a surrogate gradient, for training through spiking populations.

Forward: the Heaviside step of the membrane against the threshold, exactly the comparison the
neuron's step function makes (``v >= theta``, or ``v > theta`` with ``strict``), so a population
computes the same spikes with or without autograd. Backward: the derivative of a scaled arctangent
(SpikingJelly's ``ATan``, Fang et al. 2021) of the membrane distance to the threshold measured in
thresholds, ``u = (v - theta) / |theta|``:

    dS/dv = (alpha / 2) / (1 + (pi / 2 * alpha * u)^2) / |theta|

so the gradient's width follows the threshold whatever units the membrane is in (a converted
network's thresholds are its ANN's activation scales). No gradient reaches the threshold.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

ALPHA = 2.0  # sharpness of the arctangent surrogate (SpikingJelly's default)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: Tensor, threshold: Tensor, strict: bool) -> Tensor:
        ctx.save_for_backward(v, threshold)
        return ((v > threshold) if strict else (v >= threshold)).to(v.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        v, threshold = ctx.saved_tensors
        scale = threshold.abs().clamp_min(torch.finfo(v.dtype).tiny)
        u = (v - threshold) / scale
        surrogate = (ALPHA / 2) / (1 + (math.pi / 2 * ALPHA * u) ** 2) / scale
        return grad * surrogate, None, None


def spike(v: Tensor, threshold: Tensor, strict: bool = False) -> Tensor:
    """0/1 spikes of ``v``'s dtype where ``v >= threshold`` (``v > threshold`` when ``strict``);
    differentiable with the arctangent surrogate (module docstring) when ``v`` needs a gradient."""
    if torch.is_grad_enabled() and v.requires_grad:
        return _Spike.apply(v, torch.as_tensor(threshold, dtype=v.dtype, device=v.device), strict)
    return ((v > threshold) if strict else (v >= threshold)).to(v.dtype)


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, value: Tensor, passes: Tensor | None) -> Tensor:
        ctx.save_for_backward(passes) if passes is not None else ctx.save_for_backward()
        ctx.masked = passes is not None
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        if ctx.masked:
            (passes,) = ctx.saved_tensors
            grad = grad * passes.to(grad.dtype)
        return grad, None, None


def straight_through(x: Tensor, value: Tensor, passes: Tensor | None = None) -> Tensor:
    """``value`` (bit for bit) in the forward pass; in the backward pass the gradient reaches ``x``
    unchanged (the straight-through estimator), only where ``passes`` (bool, broadcastable) is true
    when given -- e.g. inside a quantizer's range. ``value`` itself when ``x`` needs no gradient."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _StraightThrough.apply(x, value.detach(), passes)
    return value
