"""A feedforward SpikingGamma network for sequences defined in physical time.

Input neurons send the input signal by sigma-delta spikes into the first layer's gamma memory;
hidden layers are sigma-delta ReLU neurons; the last layer is a linear read-out (not spiking).
Every time constant is in milliseconds, so one set of weights runs at any step dt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from isospike.neurons.gamma import GammaLayer, GammaState, StepConstants


@dataclass
class GammaRun:
    """What one run did.

    outputs: read-out ``[T, B, n_out]``.
    spikes: signed spikes sent (sum of |n|), per population: "input" then each hidden layer.
    steps, dt_ms, batch: run length, step and batch size.
    """

    outputs: Tensor
    spikes: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    dt_ms: float = 1.0
    batch: int = 0

    @property
    def duration_s(self) -> float:
        return self.steps * self.dt_ms / 1000.0

    def spikes_per_second(self, population: str | None = None) -> float:
        """Spikes per sample per second of simulated time (all populations when None)."""
        total = sum(self.spikes.values()) if population is None else self.spikes[population]
        return total / (self.batch * self.duration_s) if self.batch and self.steps else 0.0


class SpikingGammaNet(nn.Module):
    """Layers of :class:`GammaLayer`: ``n_in -> hidden... -> n_out`` (linear read-out).

    Args:
        n_in, hidden, n_out: layer sizes.
        K: gamma buckets per presynaptic neuron; tau_ms: (min, max) time constants in ms.
        theta: sigma-delta spike size of the input neurons and of the hidden neurons (0: analog).
        learn_tau: train the time constants.
        quantizer: sigma-delta rule, "threshold" (default) or "round" (see GammaLayer).
    """

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, K: int = 4,
                 tau_ms: tuple[float, float] = (4.0, 32.0), theta: float = 0.2, learn_tau: bool = True,
                 quantizer: str = "threshold") -> None:
        super().__init__()
        sizes = [n_in, *hidden, n_out]
        self.layers = nn.ModuleList(
            GammaLayer(a, b, K=K, tau_ms=tau_ms, theta=theta, learn_tau=learn_tau,
                       spiking_output=i < len(sizes) - 2, quantizer=quantizer)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        )
        self.config: dict[str, Any] = dict(n_in=n_in, hidden=list(hidden), n_out=n_out, K=K, tau_ms=tuple(tau_ms),
                                           theta=theta, learn_tau=learn_tau, quantizer=quantizer)

    @property
    def populations(self) -> list[str]:
        return ["input"] + [f"hidden{i}" for i in range(1, len(self.layers))]

    def initial_state(self, batch: int, online: bool = False) -> list[GammaState]:
        # self.layers holds only GammaLayers (nn.ModuleList is typed as holding any nn.Module)
        return [cast(GammaLayer, layer).initial_state(batch, online) for layer in self.layers]

    def constants(self, dt_ms: float, online: bool = False) -> list[StepConstants]:
        """Per-run constants of every layer (see :meth:`GammaLayer.constants`)."""
        return [cast(GammaLayer, layer).constants(dt_ms, online) for layer in self.layers]

    def step(self, x_t: Tensor, states: list[GammaState], dt_ms: float, online: bool = False,
             constants: list[StepConstants] | None = None) -> tuple[Tensor, list[GammaState], list[Tensor]]:
        """One step: input ``[B, n_in]`` -> (read-out ``[B, n_out]``, new states, spike counts
        per population). Pass ``constants`` (from :meth:`constants`) when stepping a whole run."""
        ks = constants if constants is not None else self.constants(dt_ms, online)
        y, new_states, spikes = x_t, [], []
        for layer, state, k in zip(self.layers, states, ks):
            y, state, n = layer(y, state, dt_ms, online, k)
            new_states.append(state)
            spikes.append(n)
        return y, new_states, spikes

    def forward(self, x_seq: Tensor, dt_ms: float) -> Tensor:
        """Read-out ``[T, B, n_out]`` for the input ``[T, B, n_in]`` (differentiable through time)."""
        return self.run(x_seq, dt_ms).outputs

    def run(self, x_seq: Tensor, dt_ms: float) -> GammaRun:
        """Simulate from rest and count spikes (see :class:`GammaRun`)."""
        if x_seq.dim() != 3:
            raise ValueError(f"expected an input sequence [T, batch, {self.config['n_in']}], got {tuple(x_seq.shape)}")
        if not dt_ms > 0:
            raise ValueError(f"dt_ms must be > 0, got {dt_ms}")
        T, B = x_seq.shape[:2]
        states = self.initial_state(B)
        ks = self.constants(dt_ms)
        counts = torch.zeros(len(self.layers), dtype=torch.float64)
        outs = []
        for t in range(T):
            y, states, spikes = self.step(x_seq[t], states, dt_ms, constants=ks)
            outs.append(y)
            counts += torch.stack([n.abs().sum().double() for n in spikes])
        out = torch.stack(outs) if outs else x_seq.new_zeros(0, B, self.config["n_out"])
        return GammaRun(out, {p: int(c) for p, c in zip(self.populations, counts.tolist())}, T, dt_ms, B)
