"""Sigma-delta coding's population: ReLU neurons that send their output as signed spikes of size
theta whenever it moves away from what their targets have integrated (send-on-delta, O'Connor &
Welling 2016; the coding between SpikingGamma neurons, seed 003).

A neuron keeps the value its targets hold, yhat = theta * (its spikes so far, signed). At each
step it sends n = round(ReLU(x) / theta) - yhat / theta spikes (at most ``max_spikes_per_step`` in
magnitude; None: as many as needed). Settled, it holds theta * round(ReLU(x) / theta)
(:func:`isospike.coding.sigma_delta.settled_level`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from isospike.activity import LayerActivity
from isospike.coding.sigma_delta import settled_level
from isospike.neurons.populations import SpikingPopulation, folded_activity
from isospike.neurons.surrogate import straight_through


class SigmaDeltaPopulation(SpikingPopulation):
    """ReLU neurons sending their output by sigma-delta spikes (see the module docstring).

    Input: currents ``[T * batch, ...]`` (time-folded) or ``[batch, ...]`` when ``static_input``.
    Output: what the targets have integrated, ``yhat`` ``[T * batch, ...]`` (float32); under
    autograd the gradient of ReLU(x) reaches the input (straight through the spikes).
    :meth:`activity` counts unit spikes (|n| summed) per step and neuron updates.
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

    def forward(self, x: Tensor, timesteps: int) -> Tensor:
        T = timesteps
        seq = x.unsqueeze(0).expand(T, *x.shape) if self.static_input else x.reshape(T, x.shape[0] // T, *x.shape[1:])
        held = torch.zeros_like(seq[0]).detach()  # integer spike sum: the targets hold threshold * held
        out = []
        for t in range(T):
            n = settled_level(seq[t].detach(), self.threshold) - held
            if self.max_spikes_per_step is not None:
                n = n.clamp(-self.max_spikes_per_step, self.max_spikes_per_step)
            held = held + n
            # no surrogate: the gradient reaches the neuron's ReLU through the held value (SpikingGamma)
            out.append(straight_through(seq[t].clamp_min(0), self.threshold * held))
        return torch.stack(out).reshape(-1, *seq.shape[2:])

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:
        """One call's unit spikes per step, |change of the held value| / theta (non-finite values
        send no countable spikes), from its output."""
        T = args[1]
        seq = output.detach().reshape(T, -1)
        held = torch.round(seq / self.threshold)
        delta = torch.diff(held, dim=0, prepend=torch.zeros_like(held[:1])).abs()
        per_step = torch.nan_to_num(delta, nan=0.0, posinf=0.0).sum(1).to(torch.int64)
        return folded_activity(output, T, per_step)

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
