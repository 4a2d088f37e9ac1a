"""Running a spiking network and collecting what it did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_map

from isospike.conversion.network import LayerStats, SpikingNetwork
from isospike.errors import check_count


@dataclass
class SimulationResult:
    """Output of :func:`simulate`.

    output: decoded network output, shaped like the ANN's.
    spikes: total spikes emitted by all neuron layers (all samples, all steps).
    layers: per layer path, its :class:`LayerStats` (neurons, spikes, synaptic_ops, timesteps...).
    timesteps: steps simulated per sample.
    samples: samples simulated.
    """

    output: Any
    spikes: int
    layers: dict[str, LayerStats] = field(default_factory=dict)
    timesteps: int = 0
    samples: int = 0

    @property
    def synaptic_ops(self) -> int:
        return sum(s.synaptic_ops for s in self.layers.values())

    @property
    def spikes_per_sample(self) -> float:
        return self.spikes / self.samples if self.samples else 0.0


def simulate(snn: SpikingNetwork, x: Tensor, timesteps: int | None = None,
             batch_size: int | None = None) -> SimulationResult:
    """Run ``snn`` on ``x`` from a fresh state with fresh counters and report its activity.

    ``batch_size``: simulate ``x`` in chunks of this many samples (each from the reset state),
    for batches whose simulation does not fit in memory at once; outputs and counts are those of
    one run over the whole batch."""
    from isospike.exact.model_conversion import ExactNetwork

    if isinstance(snn, ExactNetwork):
        return _simulate_exact(snn, x, timesteps, batch_size)
    if not isinstance(snn, SpikingNetwork):
        raise TypeError(
            f"simulate expects a network returned by isospike.convert, got {type(snn).__name__}"
        )
    T = snn.timesteps if timesteps is None else check_count(timesteps, "timesteps")
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a tensor, got {type(x).__name__}")
    chunk = x.shape[0] if batch_size is None or not x.dim() else check_count(batch_size, "batch_size")
    snn.reset_counts()
    with snn.counting_on():
        if not x.dim() or chunk >= x.shape[0]:
            out = snn(x, timesteps=timesteps)
        else:
            parts = [snn(x[i:i + chunk], timesteps=timesteps) for i in range(0, x.shape[0], chunk)]
            out = tree_map(lambda *ys: torch.cat(ys) if isinstance(ys[0], Tensor) else ys[0], *parts) \
                if len(parts) > 1 else parts[0]
    layers = snn.layer_stats()
    spikes = sum(s.spikes for s in layers.values() if s.kind == "neuron")
    return SimulationResult(output=out, spikes=spikes, layers=layers, timesteps=T, samples=x.shape[0] if x.dim() else 1)


def _simulate_exact(net: Any, x: Any, timesteps: int | None, batch_size: int | None) -> SimulationResult:
    """An exact gate network: one time step; per module path, its gates (neurons evaluated once
    per value), the spikes they fire and the synaptic events they cause."""
    if timesteps not in (None, 1):
        raise ValueError(f"exact networks compute in one time step (spatial bit coding); got timesteps={timesteps!r}")
    if batch_size is not None:
        raise ValueError("batch_size: an exact network computes each value in one pass; call it on smaller batches")
    if not net.counting_gates:
        raise ValueError("this exact network does not count its gates (isospike.exact.reference, or convert(..., "
                         "count=False)); simulate isospike.exact.convert(model) to see its spikes")
    args, kwargs = (x, {}) if not isinstance(x, (tuple, dict)) else ((x, {}) if isinstance(x, tuple) else ((), x))
    if not isinstance(args, tuple):
        args = (args,)
    out = net(*args, **kwargs)
    first = args[0] if args else next(iter(kwargs.values()), None)
    samples = int(first.shape[0]) if isinstance(first, Tensor) and first.dim() else 1
    layers = {}
    for name, c in net.layer_counts().items():
        layers[name] = LayerStats(name=name or "<model>", kind="gates", neuron_updates=c.gate_evaluations,
                                  spikes=c.spikes, synaptic_ops=c.synaptic_events, timesteps=1, samples=samples,
                                  outputs=c.lanes // max(samples, 1))
    return SimulationResult(output=out, spikes=sum(s.spikes for s in layers.values()), layers=layers, timesteps=1,
                            samples=samples)
