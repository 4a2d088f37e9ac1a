"""Sigma-delta coding's population: ReLU neurons that send their output as signed spikes of size
theta whenever it moves away from what their targets have integrated (send-on-delta, O'Connor &
Welling 2016; the coding between SpikingGamma neurons, seed 003).

A neuron keeps the value its targets hold, yhat = theta * (its spikes so far, signed). At each
step it sends n = round(ReLU(x) / theta) - yhat / theta spikes (at most ``max_spikes_per_step`` in
magnitude; None: as many as needed). Settled, it holds theta * round(ReLU(x) / theta)
(:func:`isospike.coding.sigma_delta.settled_level`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from isospike.coding.sigma_delta import settled_level
from isospike.neurons.populations import SpikingPopulation


class SigmaDeltaPopulation(SpikingPopulation):
    """ReLU neurons sending their output by sigma-delta spikes (see the module docstring).

    Input: currents ``[T * batch, ...]`` (time-folded) or ``[batch, ...]`` when ``static_input``.
    Output: what the targets have integrated, ``yhat`` ``[T * batch, ...]`` (float32). Counts unit
    spikes (|n| summed), neuron updates and spikes per step.
    """

    label = "sigma-delta neurons"

    def __init__(self, threshold: float, static_input: bool, max_spikes_per_step: int | None = None) -> None:
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"sigma-delta threshold must be > 0, got {threshold}")
        if max_spikes_per_step is not None and max_spikes_per_step < 1:
            raise ValueError(f"max_spikes_per_step must be >= 1 or None, got {max_spikes_per_step}")
        self.threshold = float(threshold)
        self.static_input = static_input
        self.max_spikes_per_step = max_spikes_per_step
        self.reset_counts()

    def reset(self) -> None:
        pass  # the state lives only within one forward call

    def reset_counts(self) -> None:
        self.spikes = 0
        self.neuron_updates = 0
        self.spikes_by_step: list[int] = []
        self.samples = 0
        self.neurons_per_sample = 0

    def forward(self, x: Tensor) -> Tensor:
        T = self.timesteps
        seq = x.unsqueeze(0).expand(T, *x.shape) if self.static_input else x.reshape(T, x.shape[0] // T, *x.shape[1:])
        held = torch.zeros_like(seq[0])  # integer spike sum: the targets hold threshold * held
        out = torch.empty_like(seq)
        if len(self.spikes_by_step) < T:
            self.spikes_by_step.extend([0] * (T - len(self.spikes_by_step)))
        for t in range(T):
            n = settled_level(seq[t], self.threshold) - held
            if self.max_spikes_per_step is not None:
                n = n.clamp(-self.max_spikes_per_step, self.max_spikes_per_step)
            held = held + n
            out[t] = self.threshold * held
            count = int(torch.nan_to_num(n.abs(), nan=0.0, posinf=0.0).sum())  # non-finite inputs send no countable spikes
            self.spikes += count
            self.spikes_by_step[t] += count
        self.neuron_updates += seq.numel()
        self.samples += seq.shape[1]
        self.neurons_per_sample = math.prod(seq.shape[2:])
        return out.reshape(-1, *seq.shape[2:])

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:.4g}, max_spikes_per_step={self.max_spikes_per_step}, static_input={self.static_input}"

    def equivalent(self, timesteps: int) -> nn.Module:
        """The settled value, theta * round(ReLU(z) / theta): exact once the network has settled
        (at the first step with unlimited spikes per step)."""
        return GridQuantizer(self.threshold)

    def receiver_wiring(self) -> dict[str, Any]:
        """Each unit spike reaching a synapse is one event per connection."""
        return {"event_size": self.threshold}

    def nir_threshold(self) -> float:
        """One spike's value, theta."""
        return self.threshold


class GridQuantizer(nn.Module):
    """``theta * round(ReLU(z) / theta)``: a settled sigma-delta neuron."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def forward(self, z: Tensor) -> Tensor:
        return self.threshold * settled_level(z, self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:.4g}"
