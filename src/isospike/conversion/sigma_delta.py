"""Sigma-delta coding: each ReLU becomes a population that sends its activation as signed spikes
of size theta whenever it moves away from what its targets have integrated (send-on-delta,
O'Connor & Welling 2016; the coding between SpikingGamma neurons, seed 003).

The population is :class:`isospike.neurons.sigma_delta.SigmaDeltaPopulation`.
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

from dataclasses import dataclass
from typing import Any

from torch import nn

from isospike.codec import MAX_SIZE, ModuleCodec
from isospike.conversion.coding import Coding, TimeCodingOptions, register
from isospike.conversion.network import SpikingNetwork
from isospike.conversion.pipeline import (
    activation_spans,
    assemble,
    has_trained_threshold,
    prepare,
    require_calibration,
    trained_threshold,
)
from isospike.guarantees import QNN_EQUIVALENT
from isospike.neurons.sigma_delta import SigmaDeltaPopulation
from isospike.neurons.sites import SigmaDeltaSite
from isospike.schema import Field

CODING = "sigma_delta"


@dataclass(frozen=True)
class SigmaDeltaOptions(TimeCodingOptions):
    """Options of sigma-delta coding.

    timesteps: steps simulated per input (1 suffices for a static input with unlimited spikes per
        step; with ``max_spikes_per_step`` the network needs about ``levels / max_spikes_per_step``
        steps per layer to settle).
    levels: theta = percentile / levels for each ReLU (more levels: closer to the ANN, more spikes).
    percentile: percentile of each ReLU's calibration activations that spans ``levels`` spikes.
    max_spikes_per_step: cap on |spikes| a neuron sends in one step (None: no cap).
    fold_bn, calibration_batch_size, front, products: as for rate coding.
    """

    timesteps: int = 1
    levels: int = 16
    percentile: float = 99.9
    max_spikes_per_step: int | None = None
    fold_bn: bool = True
    calibration_batch_size: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")
        if self.max_spikes_per_step is not None and self.max_spikes_per_step < 1:
            raise ValueError(f"max_spikes_per_step must be >= 1 or None, got {self.max_spikes_per_step}")


def build_sigma_delta(model: nn.Module, options: SigmaDeltaOptions, calibration: Any) -> SpikingNetwork:
    """Convert a ReLU network to sigma-delta neurons (see the module docstring). The output is the
    read-out at the last step (``snn.readout == "last"``)."""
    o = options
    prepared = prepare(model, calibration, fold_bn=o.fold_bn)
    trained_paths, relus = prepared.split(has_trained_threshold)
    if relus:
        require_calibration(calibration, "sigma-delta conversion sets each ReLU's spike size from activation statistics")
    spans, _ = activation_spans(prepared, relus, calibration, o.percentile, o.calibration_batch_size)
    spans.update({p: trained_threshold(prepared.modules[p]) for p in trained_paths})
    thresholds = {p: spans[p] / o.levels for p in prepared.activations}
    gm = assemble(prepared, {p: (lambda static, th=th: SigmaDeltaPopulation(th, static, o.max_spikes_per_step))
                             for p, th in thresholds.items()})
    info = {"thresholds": thresholds, "levels": o.levels, "percentile": o.percentile,
            "trained_thresholds": sorted(trained_paths), "max_spikes_per_step": o.max_spikes_per_step,
            "folded_batchnorm": prepared.folded_batchnorm}
    return SpikingNetwork(gm, o.timesteps, CODING, info, readout="last")


# ----------------------------------------------------------------------- saved files
def _write_population(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
    assert isinstance(m, SigmaDeltaPopulation)  # the codec of that type
    return {"type": "SigmaDeltaPopulation", "threshold": m.threshold, "static_input": m.static_input,
            "max_spikes_per_step": m.max_spikes_per_step}


def _read_population(f: Field, _: Any) -> nn.Module:
    f.object({"type", "threshold", "static_input", "max_spikes_per_step"})
    most = f["max_spikes_per_step"]
    return SigmaDeltaPopulation(f["threshold"].number(0.0, lo_open=True), f["static_input"].boolean(),
                                None if most.is_none else most.integer(1, MAX_SIZE))


def sigma_delta_site(stats: Any, o: SigmaDeltaOptions) -> nn.Module:
    """A site of any model (front="sites"): sigma-delta neurons with theta = span / levels, signed
    when the activation took negative values; its synapses hold theta x round(x / theta) once
    settled (at once without a cap on spikes per step)."""
    return SigmaDeltaSite(stats.span / o.levels, o.timesteps, stats.signed, o.max_spikes_per_step)


SIGMA_DELTA = register(Coding(
    CODING, SigmaDeltaOptions, build_sigma_delta, site=sigma_delta_site,
    populations={"SigmaDeltaPopulation": ModuleCodec(_write_population, _read_population)},
    guarantee=f"{QNN_EQUIVALENT} (once settled)",
    summary="send-on-delta: signed spikes of size theta whenever a ReLU's output moves"))


def convert_sigma_delta(model: nn.Module, *, calibration: Any = None, **options: Any) -> SpikingNetwork:
    """``isospike.convert(model, coding="sigma_delta", ...)``; options: :class:`SigmaDeltaOptions`."""
    snn = SIGMA_DELTA.convert(model, calibration, **options)
    assert isinstance(snn, SpikingNetwork)  # what build_sigma_delta returns
    return snn


__all__ = ["SIGMA_DELTA", "SigmaDeltaOptions", "SigmaDeltaPopulation", "build_sigma_delta", "convert_sigma_delta"]
