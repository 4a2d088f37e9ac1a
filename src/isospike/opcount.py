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


def dense_connections(layer: nn.Module, x: Tensor) -> int:
    """Connections per sample if every input and weight were nonzero: the synapses that exist for
    an input shaped like ``x[0]`` (padding contributes none, as in NeuroBench's "Dense")."""
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    return int(connection_count(layer, ones, all_weights=True).round().item())
