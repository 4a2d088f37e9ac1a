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

from isospike.neurons import IFNeuron
from isospike.opcount import connection_count, dense_connections

if TYPE_CHECKING:
    from isospike.conversion.ttfs import TTFSPopulation


class TimeFolded(nn.Module):
    """Base of modules that need the number of time steps of the current run."""

    timesteps: int = 1

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}"


class SpikingPopulation(TimeFolded):
    """Base of the neuron populations placed in a converted graph. Counters (zeroed by
    ``reset_counts``): ``spikes``, ``neuron_updates``, ``spikes_by_step`` (list), ``samples``,
    ``neurons_per_sample``."""

    spikes: int
    neuron_updates: int
    spikes_by_step: list[int]
    samples: int
    neurons_per_sample: int

    def reset(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def reset_counts(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class TimeFoldedNeuron(SpikingPopulation):
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

    @property
    def spikes(self) -> int:  # type: ignore[override]
        return self.neuron.spikes

    @property
    def neuron_updates(self) -> int:  # type: ignore[override]
        return self.neuron.neuron_updates

    @property
    def spikes_by_step(self) -> list[int]:  # type: ignore[override]
        return self.neuron.spikes_by_step

    def forward(self, x: Tensor) -> Tensor:
        T = self.timesteps
        if self.static_input:
            out = self.neuron.multi_step(x, constant_input=True, timesteps=T)
        else:
            out = self.neuron.multi_step(x.reshape(T, x.shape[0] // T, *x.shape[1:]))
        self.samples += out.shape[1]
        self.neurons_per_sample = math.prod(out.shape[2:])
        return out.reshape(-1, *out.shape[2:])

    def reset(self) -> None:
        self.neuron.reset()

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}, static_input={self.static_input}"


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
    in_crossbar: bool  # set (True) on the synapses of a crossbar placement; read with getattr(m, "in_crossbar", False)

    def __init__(self, layer: nn.Module, spike_input: bool, static_input: bool, reads_device: bool = False) -> None:
        super().__init__()
        self.layer = layer
        self.spike_input = spike_input
        self.static_input = static_input
        self.reads_device = reads_device  # each synaptic event reads a synapse device (TTFS)
        # sigma-delta input: the input is what the receiver has integrated; each change of
        # event_size is one spike (an event per connection)
        self.event_size: float | None = None
        # masked-TTFS input: silence stands for a nonzero value o (the source's silent level);
        # the layer computes layer(x - o) + fold(o), fold(o) = W o being a constant of its bias
        object.__setattr__(self, "silent_source", None)
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
        if not getattr(self, "counting", True):
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
