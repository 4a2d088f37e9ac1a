"""Sigma-delta coding: each ReLU becomes a population that sends its activation as signed spikes
of size theta whenever it moves away from what its targets have integrated (send-on-delta,
O'Connor & Welling 2016; the coding between SpikingGamma neurons, seed 003).

A neuron keeps the value its targets hold, yhat = theta * (its spikes so far, signed; they
integrate them). At each step it computes y = ReLU(input current) and sends n = round(y / theta)
- yhat / theta spikes (= round((y - yhat) / theta), at most ``max_spikes_per_step`` in magnitude;
None: as many as needed). The synapses
downstream receive yhat -- each unit spike is one synaptic event per fan-out connection -- so
a constant input costs spikes only until it is reached, and an input that changes costs spikes
in proportion to the change.

Guarantee (unlimited spikes per step): after the first step every neuron holds
theta * round(ReLU(x) / theta), so the network equals the ANN with each ReLU quantized to
a theta grid (no clipping) and every activation is within theta / 2 of its quantized-ANN value
(`isospike.equivalent` gives that network). theta per layer = percentile of the ReLU's
activations on calibration data / ``levels``; trained-threshold activations (NoisyQCFS) give
theta = lambda / levels.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from isospike.conversion.assemble import assemble_time_folded, synapses_fed_by
from isospike.conversion.calibration import activation_spans, first_batch
from isospike.conversion.graph import fold_batchnorm, propagate_shapes, relu_functions_to_modules, trace
from isospike.conversion.network import SpikingNetwork
from isospike.conversion.rate import check_rate_graph, has_trained_threshold
from isospike.conversion.timefold import CountingSynapse, SpikingPopulation

CODING = "sigma_delta"


class SigmaDeltaPopulation(SpikingPopulation):
    """ReLU neurons sending their output by sigma-delta spikes (see the module docstring).

    Input: currents ``[T * batch, ...]`` (time-folded) or ``[batch, ...]`` when ``static_input``.
    Output: what the targets have integrated, ``yhat`` ``[T * batch, ...]`` (float32). Counts unit
    spikes (|n| summed), neuron updates and spikes per step.
    """

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
            n = torch.round(torch.relu(seq[t]) / self.threshold) - held
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


def convert_sigma_delta(
    model: nn.Module,
    *,
    timesteps: int = 1,
    calibration: Any = None,
    levels: int = 16,
    percentile: float = 99.9,
    max_spikes_per_step: int | None = None,
    fold_bn: bool = True,
    calibration_batch_size: int = 256,
) -> SpikingNetwork:
    """Convert a ReLU network to sigma-delta neurons (see the module docstring).

    Args:
        timesteps: steps simulated per input (1 suffices for a static input with unlimited
            spikes per step; with ``max_spikes_per_step`` the network needs about ``levels /
            max_spikes_per_step`` steps per layer to settle).
        levels: theta = percentile / levels for each ReLU (more levels: closer to the ANN, more spikes).
        percentile: percentile of each ReLU's calibration activations that spans ``levels`` spikes.
        max_spikes_per_step: cap on |spikes| a neuron sends in one step (None: no cap).

    The output is the read-out at the last step (``snn.readout == "last"``).
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    gm = trace(model, CODING)
    relu_functions_to_modules(gm)
    folded = fold_batchnorm(gm) if fold_bn else []
    if calibration is not None:
        propagate_shapes(gm, first_batch(calibration))
    activations = check_rate_graph(gm, (nn.ReLU,), coding=CODING)
    modules = {p: gm.get_submodule(p) for p in activations}
    trained = {p: float(m.spike_threshold) for p, m in modules.items() if has_trained_threshold(m)}
    relus = [p for p in activations if p not in trained]
    if relus and calibration is None:
        raise ValueError("sigma-delta conversion sets each ReLU's spike size from activation statistics: pass "
                         "calibration=<a few hundred training inputs> (tensor, (x, y) pair or DataLoader)")
    spans: dict[str, float] = dict(trained)
    if relus:
        spans.update(activation_spans(gm, relus, calibration, percentile, CODING, calibration_batch_size)[0])
    thresholds = {p: spans[p] / levels for p in activations}
    factories = {p: (lambda static, th=th: SigmaDeltaPopulation(th, static, max_spikes_per_step)) for p, th in thresholds.items()}
    assemble_time_folded(gm, factories)
    # each unit spike reaching a synapse is one event per connection
    for syn, pop in synapses_fed_by(gm, set(thresholds)).items():
        synapse = gm.get_submodule(syn)
        assert isinstance(synapse, CountingSynapse)  # synapses_fed_by gives the paths of counting synapses
        synapse.event_size = thresholds[pop]
    info = {"thresholds": thresholds, "levels": levels, "percentile": percentile, "trained_thresholds": sorted(trained),
            "max_spikes_per_step": max_spikes_per_step, "folded_batchnorm": folded}
    return SpikingNetwork(gm, timesteps, CODING, info, readout="last")
