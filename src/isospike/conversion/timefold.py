"""Modules that let an ANN graph run as an SNN over T steps in one pass.

Time is folded into the batch dimension: a tensor that varies over time has shape
``[T * batch, ...]`` (step-major), so convolutions and linear layers run once over all steps.
Tensors that depend only on the network input stay ``[batch, ...]`` and are computed once.
Neurons unfold ``[T * batch, ...]`` to ``[T, batch, ...]`` and loop over time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isospike.neurons import IFNeuron


class TimeFolded(nn.Module):
    """Base of modules that need the number of time steps of the current run."""

    timesteps: int = 1

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}"


class TimeFoldedNeuron(TimeFolded):
    """Runs a spiking neuron population on a time-folded tensor.

    ``static_input`` marks an input that does not change over time (``[batch, ...]``): the
    neuron then receives the same current at each of the T steps. Output: ``[T * batch, ...]``.
    """

    def __init__(self, neuron: IFNeuron, static_input: bool) -> None:
        super().__init__()
        self.neuron = neuron
        self.static_input = static_input
        self.reset_counts()

    def reset_counts(self) -> None:
        """Zero the neuron's counters and the samples seen."""
        self.neuron.reset_counts()
        self.samples = 0
        self.neurons_per_sample = 0

    def forward(self, x: Tensor) -> Tensor:
        T = self.timesteps
        if self.static_input:
            out = self.neuron.multi_step(x, constant_input=True, timesteps=T)
        else:
            out = self.neuron.multi_step(x.reshape(T, x.shape[0] // T, *x.shape[1:]))
        self.samples += out.shape[1]
        self.neurons_per_sample = out[0, 0].numel()
        return out.reshape(-1, *out.shape[2:])

    def reset(self) -> None:
        self.neuron.reset()

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}, static_input={self.static_input}"


class TimeBroadcast(TimeFolded):
    """Repeats a constant ``[batch, ...]`` tensor over T steps: ``[T * batch, ...]``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(0).expand(self.timesteps, *x.shape).reshape(-1, *x.shape[1:])


def _adaptive_window_sizes(n_in: int, n_out: int) -> Tensor:
    i = torch.arange(n_out)
    start = torch.div(i * n_in, n_out, rounding_mode="floor")
    end = torch.div((i + 1) * n_in + n_out - 1, n_out, rounding_mode="floor")
    return (end - start).to(torch.float64)


def connection_count(layer: nn.Module, active: Tensor) -> Tensor:
    """For each sample row of ``active`` (0/1 float64 ``[rows, ...]``, 1 = nonzero input),
    the number of (nonzero input, nonzero weight) connections it drives in ``layer``: the
    effective synaptic operations of NeuroBench. Returns float64 ``[rows]``."""
    if isinstance(layer, nn.Linear):
        fan = (layer.weight != 0).to(torch.float64).sum(0)  # per input feature
        return active.flatten(1) @ fan
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[layer.weight.dim() - 2]
        w = (layer.weight != 0).to(torch.float64)
        y = conv(active, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
        return y.flatten(1).sum(1)
    if isinstance(layer, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        pool = {nn.AvgPool1d: F.avg_pool1d, nn.AvgPool2d: F.avg_pool2d, nn.AvgPool3d: F.avg_pool3d}[type(layer)]
        kwargs = dict(kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding, ceil_mode=layer.ceil_mode)
        if isinstance(layer, nn.AvgPool1d):
            y = pool(active, **kwargs) * _prod(layer.kernel_size)  # 1-d pooling has no divisor_override
        else:
            y = pool(active, divisor_override=1, **kwargs)
        return y.flatten(1).sum(1)
    if isinstance(layer, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        nd = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3}[type(layer)]
        pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[nd]
        y = pool(active, layer.output_size)
        area = torch.ones(())
        for d in range(nd):
            sizes = _adaptive_window_sizes(active.shape[-nd + d], y.shape[-nd + d])
            area = area.unsqueeze(-1) * sizes
        return (y * area).flatten(1).sum(1)
    raise TypeError(f"no connection count for {type(layer).__name__}")


def _prod(v) -> int:
    return math.prod(v) if isinstance(v, (tuple, list)) else int(v)


def dense_connections(layer: nn.Module, y: Tensor) -> int:
    """Connections per sample of a dense evaluation (every input x every weight): MACs."""
    if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return y[0].numel() * layer.weight[0].numel()
    if isinstance(layer, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        nd = int(layer.__class__.__name__[-2])
        k = layer.kernel_size
        return y[0].numel() * (_prod(k) if isinstance(k, (tuple, list)) else int(k) ** nd)
    return 0


class CountingSynapse(TimeFolded):
    """Wraps a synaptic layer (Linear, Conv, average pooling) and counts what it does.

    ``spike_input``: the input is a spike tensor (each nonzero input is one event, so the
    work is accumulates, ACs); otherwise multiply-accumulates (MACs). ``static_input``: the
    input is constant over time and the layer runs once per sample, not once per step.

    Counters: ``synaptic_ops`` (effective ops: nonzero input x nonzero weight), ``dense_ops``
    (every input x weight), ``ops_by_step`` (effective ops at step t, summed over runs),
    ``samples`` (samples processed).
    """

    def __init__(self, layer: nn.Module, spike_input: bool, static_input: bool) -> None:
        super().__init__()
        self.layer = layer
        self.spike_input = spike_input
        self.static_input = static_input
        self.reset_counts()

    @property
    def kind(self) -> str:
        return "ac" if self.spike_input else "mac"

    def reset_counts(self) -> None:
        self.synaptic_ops = 0
        self.dense_ops = 0
        self.samples = 0
        self.ops_by_step: list[int] = []

    def reset(self) -> None:  # no state; counters are kept across runs
        pass

    def forward(self, x: Tensor) -> Tensor:
        y = self.layer(x)
        with torch.no_grad():
            steps = 1 if self.static_input else self.timesteps
            batch = x.shape[0] // steps
            active = (x != 0).to(torch.float64).reshape(steps, batch, *x.shape[1:]).sum(1)
            per_step = connection_count(self.layer, active).round().to(torch.int64).tolist()
            self.synaptic_ops += sum(per_step)
            self.dense_ops += dense_connections(self.layer, y) * batch * steps
            self.samples += batch
            if len(self.ops_by_step) < steps:
                self.ops_by_step.extend([0] * (steps - len(self.ops_by_step)))
            for t, n in enumerate(per_step):
                self.ops_by_step[t] += n
        return y

    def extra_repr(self) -> str:
        return f"kind={self.kind}, static_input={self.static_input}"
