"""Running a spiking network and collecting what it did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from isospike.conversion.network import LayerStats, SpikingNetwork


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


def simulate(snn: SpikingNetwork, x: Tensor, timesteps: int | None = None) -> SimulationResult:
    """Run ``snn`` on ``x`` from a fresh state with fresh counters and report its activity."""
    if not isinstance(snn, SpikingNetwork):
        raise TypeError(
            f"simulate expects a network returned by isospike.convert, got {type(snn).__name__}"
        )
    snn.reset_counts()
    with snn.counting_on():
        out = snn(x, timesteps=timesteps)
    layers = snn.layer_stats()
    spikes = sum(s.spikes for s in layers.values() if s.kind == "neuron")
    T = snn.timesteps if timesteps is None else int(timesteps)
    return SimulationResult(output=out, spikes=spikes, layers=layers, timesteps=T, samples=x.shape[0])
