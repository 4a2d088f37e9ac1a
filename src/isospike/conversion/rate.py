"""Rate coding: ReLU -> integrate-and-fire neurons with reset by subtraction.

Each ReLU becomes an IF population whose threshold theta is a robust maximum of that ReLU's
activations on calibration data (a high percentile, Rueckauer et al. 2017), whose membrane
starts at ``v_init * theta`` (0.5: the half-step shift that makes spike counts round instead of
floor), and whose spikes carry the value theta, so the next layer keeps the ANN's weights.
Linear, convolution, average pooling, flatten, dropout and BatchNorm (folded into the preceding
synapse where possible) are kept. The analog input is applied at every step (direct coding);
the output is the time average of the last layer's currents.

Over T steps the firing rate of a neuron approximates clip(z, 0, theta) of its ANN activation
z with an error of at most theta / T per layer for constant inputs.

Activations trained for conversion (any module with a ``spike_threshold`` attribute, such as
isospike.train.NoisyQCFS) keep their trained threshold and need no calibration data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from isospike.codec import ModuleCodec, built, needed
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
from isospike.guarantees import BOUNDED_ERROR
from isospike.neurons import IFNeuron
from isospike.neurons.integrate_fire import ResetMode
from isospike.neurons.populations import TimeFoldedNeuron
from isospike.neurons.sites import RateSite
from isospike.schema import Field

CODING = "rate"


@dataclass(frozen=True)
class RateOptions(TimeCodingOptions):
    """Options of rate coding.

    timesteps: default simulation length T.
    percentile: percentile (0-100] of each ReLU's calibration activations used as its threshold; 100 = max.
    v_init: initial membrane as a fraction of the threshold (0.5: spike counts round instead of floor).
    reset: "subtract" (default) or "zero".
    fold_bn: fold BatchNorm into the preceding Conv/Linear.
    calibration_batch_size: inputs per calibration pass.
    front, products: see :class:`~isospike.conversion.coding.TimeCodingOptions`.
    """

    timesteps: int = 8
    percentile: float = 99.9
    v_init: float = 0.5
    reset: ResetMode = "subtract"
    fold_bn: bool = True
    calibration_batch_size: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")
        if self.calibration_batch_size < 1:
            raise ValueError(f"calibration_batch_size must be >= 1, got {self.calibration_batch_size}")


def build_rate(model: nn.Module, options: RateOptions, calibration: Any) -> SpikingNetwork:
    """Convert a ReLU network to a rate-coded IF network (see the module docstring)."""
    o = options
    prepared = prepare(model, calibration, fold_bn=o.fold_bn)
    trained_paths, relus = prepared.split(has_trained_threshold)
    trained = {p: trained_threshold(prepared.modules[p]) for p in trained_paths}
    if relus:
        require_calibration(calibration, "rate conversion sets each ReLU neuron's threshold from activation statistics")
    thresholds, dead = activation_spans(prepared, relus, calibration, o.percentile, o.calibration_batch_size)
    for path, theta in trained.items():
        if not theta > 0.0:
            raise ValueError(f"activation at '{path}' has a non-positive trained threshold {theta}")
        thresholds[path] = theta
    thresholds = {p: thresholds[p] for p in prepared.activations}  # graph order
    neurons = {path: IFNeuron(threshold=th, reset=o.reset, v_init=o.v_init * th, spike_value=th)
               for path, th in thresholds.items()}
    gm = assemble(prepared, neurons)
    info = {"thresholds": thresholds, "trained_thresholds": sorted(trained), "percentile": o.percentile,
            "v_init": o.v_init, "reset": o.reset, "folded_batchnorm": prepared.folded_batchnorm,
            "never_active_on_calibration": dead}
    return SpikingNetwork(gm, o.timesteps, CODING, info)


# ----------------------------------------------------------------------- saved files
def _write_population(m: nn.Module, _: dict[int, str]) -> dict[str, Any]:
    assert isinstance(m, TimeFoldedNeuron)  # the codec of that type
    n = m.neuron
    return {"type": "TimeFoldedNeuron", "static_input": m.static_input, "neuron": {"reset": n.reset_mode, "leak": n.leak}}


def _read_population(f: Field, stored: Any) -> nn.Module:
    f.object({"type", "static_input", "neuron"})
    n = f["neuron"].object({"reset", "leak"})
    reset, leak = n["reset"].choice(("subtract", "zero")), n["leak"].number(0.0, 1.0, lo_open=True)
    neuron = built(f, lambda: IFNeuron(threshold=needed(stored, "neuron.threshold", f), reset=reset,
                                       v_init=needed(stored, "neuron.v_init", f), leak=leak,
                                       spike_value=needed(stored, "neuron.spike_value", f)))
    return TimeFoldedNeuron(neuron, f["static_input"].boolean())


def rate_site(stats: Any, o: RateOptions) -> nn.Module:
    """A site of any model (front="sites"): IF neurons with threshold = the site's span, reset
    by subtraction, V(0) = v_init x threshold, driven by the activation for T steps (two channels
    on a signed site): the site equals its rate quantizer exactly."""
    if o.reset != "subtract":
        raise ValueError("front='sites' codes each site with IF neurons that reset by subtraction (the site then equals "
                         "its rate quantizer); reset='zero' is available with front='graph' (ReLU networks)")
    return RateSite(stats.span, o.timesteps, stats.signed, v_init=o.v_init)


RATE = register(Coding(
    CODING, RateOptions, build_rate, site=rate_site,
    populations={"TimeFoldedNeuron": ModuleCodec(_write_population, _read_population)},
    guarantee=f"{BOUNDED_ERROR} (qnn-equivalent on the first layer)",
    summary="IF neurons, reset by subtraction: spike counts over T steps approximate each ReLU"))


def convert_rate(model: nn.Module, *, calibration: Any = None, **options: Any) -> SpikingNetwork:
    """``isospike.convert(model, coding="rate", ...)``; options: :class:`RateOptions`."""
    snn = RATE.convert(model, calibration, **options)
    assert isinstance(snn, SpikingNetwork)  # what build_rate returns
    return snn


__all__ = ["RATE", "RateOptions", "build_rate", "convert_rate", "has_trained_threshold"]
