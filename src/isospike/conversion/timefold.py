"""Modules that let an ANN graph run as an SNN over T steps in one pass.

Time is folded into the batch dimension: a tensor that varies over time has shape
``[T * batch, ...]`` (step-major), so convolutions and linear layers run once over all steps.
Tensors that depend only on the network input stay ``[batch, ...]`` and are computed once.
Neurons unfold ``[T * batch, ...]`` to ``[T, batch, ...]`` and loop over time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from isospike.activity import LayerActivity
from isospike.neurons.populations import SpikingPopulation, TimeFolded, TimeFoldedNeuron
from isospike.opcount import connection_count, dense_connections

if TYPE_CHECKING:
    from isospike.neurons.ttfs import TTFSPopulation

__all__ = ["CountingSynapse", "ElementwiseScale", "SpikingPopulation", "TimeBroadcast", "TimeFolded", "TimeFoldedNeuron"]


class TimeBroadcast(TimeFolded):
    """Repeats a constant ``[batch, ...]`` tensor over T steps: ``[T * batch, ...]``."""

    def forward(self, x: Tensor, timesteps: int) -> Tensor:
        return x.unsqueeze(0).expand(timesteps, *x.shape).reshape(-1, *x.shape[1:])


class CountingSynapse(TimeFolded):
    """Wraps a synaptic layer (Linear, Conv, average pooling) of a converted network and says
    what each call of it did (:meth:`activity`, read by :func:`isospike.counting`).

    ``spike_input``: the input is a spike tensor (each nonzero input is one event, so the
    work is accumulates, ACs); otherwise multiply-accumulates (MACs). ``static_input``: the
    input is constant over time and the layer runs once per sample, not once per step.

    A call's row: ``synaptic_ops`` (effective ops: nonzero input x nonzero weight), ``dense_ops``
    (every input x weight), ``input_events`` (nonzero inputs: spikes arriving), ``by_step``
    (effective ops at step t), ``outputs`` (values produced), ``parameters`` (weights stored),
    ``device_reads`` (one per synaptic event when ``reads_device``); with ``event_size`` set
    (sigma-delta input), every change of the input by ``event_size`` counts as one event.
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

    @property
    def kind(self) -> str:
        return "ac" if self.spike_input else "mac"

    @property
    def parameters_stored(self) -> int:
        w = getattr(self.layer, "weight", None)
        return int(w.numel()) if isinstance(w, Tensor) else 0

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
        """The silent value's contribution, W o (a crossbar folds digitally, without its ADC)."""
        f = getattr(self.layer, "ideal", self.layer)
        return f(offset.unsqueeze(0)) - f(torch.zeros_like(offset).unsqueeze(0))

    def forward(self, x: Tensor, timesteps: int) -> Tensor:
        if self.silent_source is not None and self.silent_source.masked:
            offset = self._silent_offset(x)
            return self.layer(x - offset) + self._fold(offset)  # the silent neurons' entries are exactly 0: no event
        return self.layer(x)

    def _input_seen(self, x: Tensor) -> Tensor:
        """The input as the layer's events see it: the silent value of a masked source removed."""
        if self.silent_source is not None and self.silent_source.masked:
            return x - self._silent_offset(x)
        return x

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:
        """One call's synaptic work, from its input (see the class docstring)."""
        x, T = args[0], args[1]
        with torch.no_grad():
            x = self._input_seen(x.detach())
            steps = 1 if self.static_input else T
            batch = x.shape[0] // steps
            if self.event_size is not None:
                seq = x.to(torch.float64).reshape(steps, batch, *x.shape[1:])
                delta = torch.diff(seq, dim=0, prepend=torch.zeros_like(seq[:1]))
                # non-finite values (NaN/inf inputs) carry no countable events
                active = torch.nan_to_num(torch.round(delta.abs() / self.event_size), nan=0.0, posinf=0.0).sum(1)
            else:
                active = (x != 0).to(torch.float64).reshape(steps, batch, *x.shape[1:]).sum(1)
            per_step = connection_count(self.layer, active).round().to(torch.int64)
            ops = int(per_step.sum())
            return LayerActivity("", self.kind, synaptic_ops=ops, dense_ops=dense_connections(self.layer, x) * batch * steps,
                                 timesteps=steps, samples=batch, by_step=per_step.tolist(),
                                 input_events=int(active.sum()), outputs=output.numel(),
                                 parameters=self.parameters_stored, device_reads=ops if self.reads_device else 0)

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
