"""Modules that let an ANN graph run as an SNN over T steps in one pass.

Time is folded into the batch dimension: a tensor that varies over time has shape
``[T * batch, ...]`` (step-major), so convolutions and linear layers run once over all steps.
Tensors that depend only on the network input stay ``[batch, ...]`` and are computed once.
Neurons unfold ``[T * batch, ...]`` to ``[T, batch, ...]`` and loop over time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from isospike.neurons.populations import SpikingPopulation, TimeFolded, TimeFoldedNeuron
from isospike.opcount import connection_count, dense_connections

if TYPE_CHECKING:
    from isospike.neurons.ttfs import TTFSPopulation

__all__ = ["CountingSynapse", "ElementwiseScale", "SpikingPopulation", "TimeBroadcast", "TimeFolded", "TimeFoldedNeuron"]


class TimeBroadcast(TimeFolded):
    """Repeats a constant ``[batch, ...]`` tensor over T steps: ``[T * batch, ...]``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(0).expand(self.timesteps, *x.shape).reshape(-1, *x.shape[1:])


class CountingSynapse(TimeFolded):
    """Wraps a synaptic layer (Linear, Conv, average pooling) and counts what it does.

    ``spike_input``: the input is a spike tensor (each nonzero input is one event, so the
    work is accumulates, ACs); otherwise multiply-accumulates (MACs). ``static_input``: the
    input is constant over time and the layer runs once per sample, not once per step.

    Counters: ``synaptic_ops`` (effective ops: nonzero input x nonzero weight), ``dense_ops``
    (every input x weight), ``input_events`` (nonzero inputs: spikes arriving), ``ops_by_step``
    (effective ops at step t, summed over runs), ``samples`` (samples processed);
    with ``event_size`` set (sigma-delta input), every change of the input by ``event_size``
    counts as one event;
    ``outputs_per_sample``: output values per sample and step; ``parameters``: weights stored.
    """

    # the masked-TTFS population feeding this synapse, kept out of the module tree (see __init__)
    silent_source: TTFSPopulation | None

    def __init__(self, layer: nn.Module, spike_input: bool, static_input: bool, reads_device: bool = False,
                 event_size: float | None = None, silent_source: TTFSPopulation | None = None,
                 in_crossbar: bool = False) -> None:
        """``event_size``: the input is what a sigma-delta receiver has integrated; each change of
        ``event_size`` is one spike (an event per connection). ``silent_source``: the masked-TTFS
        population feeding it, whose silence stands for a nonzero value o: the layer computes
        layer(x - o) + fold(o), fold(o) = W o being a constant of its bias. ``in_crossbar``: the
        layer runs on a memristive crossbar (its energy is counted there)."""
        super().__init__()
        if event_size is not None and not event_size > 0:
            raise ValueError(f"event_size must be > 0 or None, got {event_size}")
        self.layer = layer
        self.spike_input = spike_input
        self.static_input = static_input
        self.reads_device = reads_device  # each synaptic event reads a synapse device (TTFS)
        self.event_size = None if event_size is None else float(event_size)
        self.in_crossbar = bool(in_crossbar)
        object.__setattr__(self, "silent_source", silent_source)  # not a submodule: the population is elsewhere
        self._fold_cache: dict[tuple, Tensor] = {}
        self.counting = True  # False skips the synaptic-operation counts (accuracy-only runs)
        self.reset_counts()

    @property
    def kind(self) -> str:
        return "ac" if self.spike_input else "mac"

    def reset_counts(self) -> None:
        self.synaptic_ops = 0
        self.dense_ops = 0
        self.input_events = 0
        self.samples = 0
        self.outputs_per_sample = 0
        self.ops_by_step: list[int] = []

    @property
    def parameters_stored(self) -> int:
        w = getattr(self.layer, "weight", None)
        return int(w.numel()) if isinstance(w, Tensor) else 0

    def reset(self) -> None:  # no state; counters are kept across runs
        pass

    def _silent_offset(self, x: Tensor) -> Tensor:
        src = self.silent_source
        assert src is not None  # only called for a synapse fed by a masked-TTFS population
        values = src.silent_values().to(x.dtype)
        if values.numel() == 1:  # one silent level for the layer
            return values.reshape(()).expand(x.shape[1:])
        if src.sample_shape is None:
            raise RuntimeError("a per-channel masked-TTFS population must run once before the layers it feeds")
        return values.expand(src.sample_shape).reshape(x.shape[1:])

    def _fold(self, offset: Tensor) -> Tensor:
        key = (tuple(offset.shape), float(offset.sum()), float(offset.abs().sum()))
        if key not in self._fold_cache:
            f = getattr(self.layer, "ideal", self.layer)  # a crossbar folds digitally, without its ADC
            with torch.no_grad():
                self._fold_cache = {key: f(offset.unsqueeze(0)) - f(torch.zeros_like(offset).unsqueeze(0))}
        return self._fold_cache[key]

    def forward(self, x: Tensor) -> Tensor:
        if self.silent_source is not None and self.silent_source.masked:
            offset = self._silent_offset(x)
            x = x - offset  # the silent neurons' entries are exactly 0: no event
            y = self.layer(x) + self._fold(offset)
        else:
            y = self.layer(x)
        if not self.counting:
            return y
        with torch.no_grad():
            steps = 1 if self.static_input else self.timesteps
            batch = x.shape[0] // steps
            if self.event_size is not None:
                seq = x.detach().to(torch.float64).reshape(steps, batch, *x.shape[1:])
                delta = torch.diff(seq, dim=0, prepend=torch.zeros_like(seq[:1]))
                # non-finite values (NaN/inf inputs) carry no countable events
                active = torch.nan_to_num(torch.round(delta.abs() / self.event_size), nan=0.0, posinf=0.0).sum(1)
            else:
                active = (x != 0).to(torch.float64).reshape(steps, batch, *x.shape[1:]).sum(1)
            per_step = connection_count(self.layer, active).round().to(torch.int64).tolist()
            self.synaptic_ops += sum(per_step)
            self.dense_ops += dense_connections(self.layer, x) * batch * steps
            self.input_events += int(active.sum().item())
            self.outputs_per_sample = math.prod(y.shape[1:]) if y.dim() else 1
            self.samples += batch
            if len(self.ops_by_step) < steps:
                self.ops_by_step.extend([0] * (steps - len(self.ops_by_step)))
            for t, n in enumerate(per_step):
                self.ops_by_step[t] += n
        return y

    def extra_repr(self) -> str:
        return f"kind={self.kind}, static_input={self.static_input}"


class ElementwiseScale(nn.Module):
    """Multiplies its input by a fixed per-element (broadcast) factor: the value spikes carry when
    a graph (e.g. one read from NIR, where spikes are 1) feeds them to an addition directly."""

    scale: Tensor  # buffer registered in __init__

    def __init__(self, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale
