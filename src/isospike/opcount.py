"""Counting synaptic operations the way NeuroBench does: for a linear layer (Linear, Conv,
average pooling) and an input, the number of (nonzero input, nonzero weight) connections it
drives -- the effective operations -- and the number of all connections -- the dense ones.
Biases are not counted. Shared by the spiking layers (which report their own counts) and the
energy model (which counts ANN layers)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _adaptive_window_sizes(n_in: int, n_out: int, device: torch.device) -> Tensor:
    i = torch.arange(n_out, device=device)
    start = torch.div(i * n_in, n_out, rounding_mode="floor")
    end = torch.div((i + 1) * n_in + n_out - 1, n_out, rounding_mode="floor")
    return (end - start).to(torch.float64)


def connection_count(layer: nn.Module, active: Tensor, all_weights: bool = False) -> Tensor:
    """For each sample row of ``active`` (0/1 float64 ``[rows, ...]``, 1 = nonzero input),
    the number of (nonzero input, nonzero weight) connections it drives in ``layer``: the
    effective synaptic operations of NeuroBench. Returns float64 ``[rows]``."""
    if isinstance(layer, nn.Linear):
        w = torch.ones_like(layer.weight, dtype=torch.float64) if all_weights else (layer.weight != 0).to(torch.float64)
        fan = w.sum(0)  # per input feature
        per_position = active @ fan  # [rows, *leading dims] (Linear acts on the last dimension)
        return per_position.reshape(per_position.shape[0], -1).sum(1)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[layer.weight.dim() - 2]
        w = torch.ones_like(layer.weight, dtype=torch.float64) if all_weights else (layer.weight != 0).to(torch.float64)
        y = conv(active, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
        return y.flatten(1).sum(1)
    if isinstance(layer, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        if isinstance(layer, nn.AvgPool1d):  # 1-d pooling has no divisor_override
            y = F.avg_pool1d(active, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode) * _prod(layer.kernel_size)
        elif isinstance(layer, nn.AvgPool2d):
            y = F.avg_pool2d(active, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, divisor_override=1)
        else:
            y = F.avg_pool3d(active, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, divisor_override=1)
        return y.flatten(1).sum(1)
    if isinstance(layer, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        if isinstance(layer, nn.AdaptiveAvgPool1d):
            nd, y = 1, F.adaptive_avg_pool1d(active, layer.output_size)
        elif isinstance(layer, nn.AdaptiveAvgPool2d):
            nd, y = 2, F.adaptive_avg_pool2d(active, layer.output_size)
        else:
            nd, y = 3, F.adaptive_avg_pool3d(active, layer.output_size)
        area = torch.ones((), dtype=torch.float64, device=active.device)
        for d in range(nd):
            sizes = _adaptive_window_sizes(active.shape[-nd + d], y.shape[-nd + d], active.device)
            area = area.unsqueeze(-1) * sizes
        return (y * area).flatten(1).sum(1)
    raise TypeError(f"no connection count for {type(layer).__name__}")


def _prod(v) -> int:
    return math.prod(v) if isinstance(v, (tuple, list)) else int(v)


def dense_connections(layer: nn.Module, x: Tensor, inner_padding: tuple[int, ...] = ()) -> int:
    """Connections per sample if every input and weight were nonzero: the synapses that exist for
    an input shaped like ``x[0]`` (padding contributes none, as in NeuroBench's "Dense").
    ``inner_padding``: zeros the layer adds inside its own ``forward`` (:func:`inner_padding`)."""
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    if inner_padding:
        ones = F.pad(ones, inner_padding)
    return int(connection_count(layer, ones, all_weights=True).round().item())


def inner_padding(layer: nn.Module, x: Tensor, y: Tensor) -> tuple[int, ...]:
    """The zero padding a convolution module adds to its input inside its own ``forward`` before
    its stated ``padding`` (TensorFlow-style "same" convolutions, e.g. EfficientNet's
    ``Conv2dStaticSamePadding``), read from the output shape it produced: per spatial dimension the
    fewest extra zeros that give that output, split as TensorFlow splits them (the extra one
    after). Returns ``F.pad``'s argument (last dimension first), empty when there is none."""
    if not isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or isinstance(layer.padding, str):
        return ()
    nd = layer.weight.dim() - 2
    if x.dim() != nd + 2 or y.dim() != nd + 2:
        return ()
    pads: list[int] = []
    extra_any = False
    for d in reversed(range(nd)):
        size, out = x.shape[2 + d], y.shape[2 + d]
        k, s, dil, p = layer.kernel_size[d], layer.stride[d], layer.dilation[d], int(layer.padding[d])
        extra = max((out - 1) * s + dil * (k - 1) + 1 - (size + 2 * p), 0)
        extra_any |= extra > 0
        pads += [extra // 2, extra - extra // 2]
    return tuple(pads) if extra_any else ()
